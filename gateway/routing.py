"""Which service owns a path (CONTRACT.md, "Which service owns what"). One owner per path, and only
plain paths are routed."""

from __future__ import annotations

import re

# Ordered: the first match wins. (methods or None for any, path regex, service)
_ROUTES: list[tuple[frozenset[str] | None, re.Pattern[str], str]] = [
    (frozenset({"POST"}), re.compile(r"^/api/users/?$"), "auth"),
    (frozenset({"POST"}), re.compile(r"^/login/?$"), "auth"),
    (None, re.compile(r"^/user/"), "auth"),
    (None, re.compile(r"^/advertise/"), "auth"),
    (None, re.compile(r"^/data_module/"), "dataset"),
    (None, re.compile(r"^/dataset/"), "dataset"),
    (None, re.compile(r"^/task/upload_data/?$"), "dataset"),
    (None, re.compile(r"^/picbed(/|$)"), "dataset"),
    (None, re.compile(r"^/video(/|$)"), "dataset"),
    (None, re.compile(r"^/task(/|$)"), "tasks"),
    (None, re.compile(r"^/review/"), "tasks"),
    (None, re.compile(r"^/data/(list|label)/?$"), "tasks"),
    (None, re.compile(r"^/api/v1/engine/recocomp(/|$)"), "face"),
    (None, re.compile(r"^/api/detect/?$"), "detect"),
    (None, re.compile(r"^/api/data/"), "stats"),
    (frozenset({"GET", "HEAD"}), re.compile(r"^/(console(/|$)|$)"), "console"),
]


# Escaped separators and non-ASCII bytes in the request target as the client sent it.
_OPAQUE_RAW_PATH = re.compile(rb"%(2f|5c)|[^\x21-\x7e]", re.IGNORECASE)


def is_plain_path(raw_path: bytes, path: str) -> bool:
    """Whether a request's path means one thing to the gateway and to every service behind it.

    `raw_path` is the path as sent, `path` its percent-decoded form. Dot segments, empty segments
    (`//`), encoded slashes, backslashes (encoded or not), raw non-ASCII bytes and non-printable
    characters are read differently by different HTTP stacks (and would let `/user/../internal/...` or `/user/./login`
    slip past routing and rate limits), so such a path is refused, never rewritten. A trailing slash
    is fine: several documented routes have one.
    """
    if _OPAQUE_RAW_PATH.search(raw_path) or "\\" in path or not path.isprintable():
        return False
    segments = path.split("/")[1:]
    return "." not in segments and ".." not in segments and "" not in segments[:-1]


def owner_of(method: str, path: str) -> str | None:
    """The service that serves `path`, or None (404). `/internal/*` is never routed."""
    if path.startswith("/internal"):
        return None
    method = method.upper()
    for methods, pattern, service in _ROUTES:
        if (methods is None or method in methods) and pattern.search(path):
            return service
    return None
