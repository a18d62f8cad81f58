"""The edge of every service: what a request must satisfy before any router sees it.

- Its body is no larger than its route allows (shared/body_limits.py): refused from Content-Length
  before a byte is read, and while streaming when no length is declared (413).
- No text in it holds a NUL character, which PostgreSQL cannot store: not the path, not the query
  string, not a JSON or urlencoded body (400). Multipart text fields are left to the database
  fallback in service_app (a refused value is a 400 there too).
- A JSON body nests at most MAX_JSON_DEPTH levels (400): deeper input exhausts the recursion of the
  JSON parser and of every reader after it.

The checks are a few passes of bytes methods over the body (C loops), not a Python step per byte or a
regular expression per string: a 100,000-question task is a 4.5 MB body of 400,000 strings.

Bodies that are not multipart are small, or read whole by their route anyway, so they are read here
once, checked, and handed on unchanged; multipart bodies (uploads) stream through, counted.

Routes that parse their JSON body by hand (to check the caller's role first: CONTRACT.md, authorization
before validation) read it with `read_json_body` (or `read_json_object`, then `validated`), and declare
it with shared.openapi.json_body. `validation_summary` says what pydantic found wrong, for them and for
the bodies and parameters FastAPI validates.
"""

from __future__ import annotations

import asyncio
import json
import operator
import re
from collections.abc import Iterable, Mapping
from itertools import accumulate, count
from typing import Any, TypeVar
from urllib.parse import unquote_plus

import orjson
from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.body_limits import body_limit
from shared.contract import Dialect, dialect_for
from shared.envelopes import error_response
from shared.errors import InvalidRequest, LabelhiveError, PayloadTooLarge

M = TypeVar("M", bound=BaseModel)

MAX_JSON_DEPTH = 64
# Bodies larger than this are scanned off the event loop.
_SCAN_IN_THREAD = 256 * 1024

# The escape of NUL: `\u0000` after an even number of backslashes, since `\\u0000` is a backslash
# followed by the text "u0000".
_JSON_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_NOT_QUOTES_OR_BRACKETS = bytes(set(range(256)) - set(b'"[]{}'))
_CURLY_AS_SQUARE = bytes.maketrans(b"{}", b"[]")
_BRACKET_STEPS = bytes.maketrans(b"[]", b"\x02\x00")
# orjson reads an integer beyond 64 bits as a float; one has 19 digits at least.
_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_DIGIT_RUN = b"0" * 19

# 000's and 001's clients read Chinese; the others read the English their documents use.
_CHINESE_DIALECTS = frozenset({Dialect.DATASET_000, Dialect.EXPERT_001})


def say(dialect: Dialect, english: str, chinese: str) -> str:
    """A message in the language of the route's document."""
    return chinese if dialect in _CHINESE_DIALECTS else english


def json_too_deep(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether `body` nests arrays and objects more than `max_depth` levels (brackets inside strings
    do not count; unclosed ones do, as the parser would descend into them)."""
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return False
    brackets = _structural_brackets(body)
    # Each pass takes out the innermost pairs, one level: a balanced body at most `max_depth` deep
    # is gone after `max_depth` passes (a task's 100,000 files after 3).
    remaining = brackets
    for _ in range(max_depth):
        if not remaining:
            return False
        remaining = remaining.replace(b"[]", b"")
    if not remaining:
        return False
    # Deep or unbalanced. Each opener as 2 and each closer as 0: the depth after the k-th bracket is
    # (sum of the first k) - k, summed by itertools in C, not one Python step per bracket.
    steps = brackets.translate(_BRACKET_STEPS)
    return max(map(operator.sub, accumulate(steps), count(1)), default=0) > max_depth


def _structural_brackets(body: bytes) -> bytes:
    """The brackets of `body` outside its strings, in order, `{` and `}` as `[` and `]`."""
    if b"\\" in body:
        # Backslashes (inside strings: a parser stops at one outside) pair up from the left, as the
        # parser reads them; what is left of them escapes the next character: a quote is text then.
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = body.translate(_CURLY_AS_SQUARE, _NOT_QUOTES_OR_BRACKETS)
    # Quotes now alternate, opening and closing strings. Two adjacent ones are a string without
    # brackets, or the gap between two strings without any; dropping either drops no structure and
    # keeps them alternating. What is still between quotes is inside a string; after an unmatched
    # last quote is an unterminated string, which no parser descends into.
    marks = marks.replace(b'""', b"")
    if b'"' in marks:
        marks = b"".join(marks.split(b'"')[::2])
    return marks


def parse_json(body: bytes) -> Any:
    """`body` as the standard library's json.loads reads it (the same value, or a ValueError or
    RecursionError), at orjson's speed. orjson refuses some of what the standard library takes (NaN
    and Infinity, numbers beyond a double, lone surrogates, a byte-order mark, UTF-16 and UTF-32) and
    reads an integer beyond 64 bits as a float: those bodies, and any with a run of 19 digits (where
    such an integer could be), are the standard library's to read."""
    if _LONG_DIGIT_RUN not in body.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # the standard library's answer: a value orjson does not take, or its own error
    return json.loads(body)


def json_holds_nul(body: bytes) -> bool:
    return b"\x00" in body or (b"\\u0000" in body and _JSON_NUL_ESCAPE.search(body) is not None)


def form_holds_nul(body: bytes) -> bool:
    return "\x00" in unquote_plus(body.decode("latin-1"))


class BodyTooLarge(StarletteHTTPException):
    """Raised from `receive` when a streamed body passes its limit. An HTTPException, so that the
    framework's own body parsing lets it through to the error handler (it turns other errors into a
    vague 400), which renders it as the route's PayloadTooLarge."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than the limit of {limit} bytes for this route")


def _declared_length(headers: Headers, dialect: Dialect) -> int | None:
    declared = headers.get("content-length")
    if declared is None:
        return None
    if not declared.isdigit():
        raise InvalidRequest(
            say(dialect, "invalid request: invalid Content-Length header", "参数错误: Content-Length 无效")
        )
    return int(declared)


def _url_problem(scope: Scope, dialect: Dialect) -> LabelhiveError | None:
    query = scope.get("query_string", b"")
    if "\x00" in scope["path"] or (b"%00" in query and form_holds_nul(query)):
        return InvalidRequest(
            say(dialect, "invalid request: the URL holds a NUL character", "参数错误: URL 不能包含NUL字符")
        )
    return None


async def _read_whole(receive: Receive, limit: int, dialect: Dialect) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client left: a cut-off body is no request
            raise ClientDisconnect()
        body.extend(message.get("body", b""))
        if len(body) > limit:
            raise too_large(limit, dialect)
        if not message.get("more_body", False):
            return bytes(body)


def too_large(limit: int, dialect: Dialect) -> PayloadTooLarge:
    return PayloadTooLarge(
        say(
            dialect,
            f"request body larger than the limit of {limit} bytes for this route",
            f"数据过大: 请求体超过 {limit} 字节的限制",
        )
    )


def _body_problem(body: bytes, content_type: str, dialect: Dialect) -> LabelhiveError | None:
    if content_type.startswith("application/x-www-form-urlencoded"):
        holds_nul = form_holds_nul(body)
    else:  # JSON, whatever the client called it: the routes that parse by hand ignore the header
        if json_too_deep(body):
            return InvalidRequest(
                say(
                    dialect,
                    f"invalid request: JSON nested more than {MAX_JSON_DEPTH} levels deep",
                    f"参数错误: JSON嵌套超过{MAX_JSON_DEPTH}层",
                )
            )
        holds_nul = json_holds_nul(body)
    if holds_nul:
        return InvalidRequest(
            say(
                dialect,
                "invalid request: text must not contain NUL characters (\\u0000)",
                "参数错误: 文本不能包含NUL字符(\\u0000)",
            )
        )
    return None


def _replaying(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # only a disconnect is left to wait for
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _counting(receive: Receive, limit: int) -> Receive:
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
        return message

    return counted


class EdgeGuardMiddleware:
    """Refuses, in the route's envelope, a request whose size or text the platform cannot take."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        dialect = dialect_for(method, path)
        try:
            if problem := _url_problem(scope, dialect):
                raise problem
            headers = Headers(scope=scope)
            content_type = headers.get("content-type", "").lower()
            multipart = content_type.startswith("multipart/")
            limit = body_limit(method, path, multipart)
            declared = _declared_length(headers, dialect)
            if declared is not None and declared > limit:
                raise too_large(limit, dialect)
            if multipart:
                receive = _counting(receive, limit)
            else:
                body = await _read_whole(receive, limit, dialect)
                check = _body_problem
                problem = (
                    await asyncio.to_thread(check, body, content_type, dialect)
                    if len(body) > _SCAN_IN_THREAD
                    else check(body, content_type, dialect)
                )
                if problem:
                    raise problem
                receive = _replaying(body, receive)
        except LabelhiveError as error:
            await error_response(dialect, error, path)(scope, receive, send)
            return
        except ClientDisconnect:
            return  # nobody to answer
        await self.app(scope, receive, send)


def request_dialect(request: Request) -> Dialect:
    """The document a request's answer speaks: the route's own choice (e.g. 001's register), else its path's."""
    return getattr(request.state, "dialect", None) or dialect_for(request.method, request.url.path)


async def read_json_object(request: Request, max_bytes: int | None = None) -> dict[str, Any]:
    """The request's body as a JSON object ({} when empty), for routes that parse it by hand. Its
    size, depth and text were checked at the edge; `max_bytes` is a service's own, lower limit. A large
    body is parsed off the event loop."""
    body = await request.body()
    dialect = request_dialect(request)
    if max_bytes is not None and len(body) > max_bytes:
        raise too_large(max_bytes, dialect)
    if not body.strip():
        return {}
    try:
        value = await asyncio.to_thread(parse_json, body) if len(body) > _SCAN_IN_THREAD else parse_json(body)
    except (ValueError, RecursionError):
        raise InvalidRequest(
            say(dialect, "invalid request: body is not valid JSON", "参数错误: 请求体不是合法的JSON")
        ) from None
    if not isinstance(value, dict):
        raise InvalidRequest(
            say(dialect, "invalid request: body must be a JSON object", "参数错误: 请求体必须是JSON对象")
        )
    return value


async def read_json_body(request: Request, model: type[M], max_bytes: int | None = None) -> M:
    """The request's JSON body validated as `model` (declare it with shared.openapi.json_body(model))."""
    return validated(model, await read_json_object(request, max_bytes), request_dialect(request))


def validated(model: type[M], data: Mapping[str, Any], dialect: Dialect) -> M:
    """`data` as `model`, or the route's 400 saying what is wrong."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_input(exc.errors(), dialect) from None


def invalid_input(errors: Iterable[Mapping[str, Any]], dialect: Dialect) -> InvalidRequest:
    summary = validation_summary(errors)
    return InvalidRequest(say(dialect, f"invalid request: {summary}", f"参数错误: {summary}"))


# Where FastAPI found a value: the first element of its errors' locations, not a field's name.
_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


def validation_summary(errors: Iterable[Mapping[str, Any]], limit: int = 5) -> str:
    """pydantic's (or FastAPI's) validation errors as `field: problem; ...`, the first `limit` of them."""
    parts = []
    for error in list(errors)[:limit]:
        location = tuple(error.get("loc", ()))
        if error.get("type") == "json_invalid":
            parts.append("body is not valid JSON")
            continue
        if location == ("body",):
            parts.append("body must be a JSON object")
            continue
        if location[:1] and location[0] in _LOCATIONS:
            location = location[1:]
        field = ".".join(str(part) for part in location)
        parts.append(f"{field}: {error.get('msg')}" if field else str(error.get("msg")))
    return "; ".join(parts)
