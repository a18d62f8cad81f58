"""One error base class, rendered by one handler into the envelope of the route that raised it.

A domain error carries the code its own document lists (003's `code`, 002's `err_code`, ...). The
generic kinds below (not logged in, no permission, bad input, not found, unavailable, ...) know how
each document spells them, so a service raises `NotLoggedIn()` and the client of every document gets
its own envelope.
"""

from __future__ import annotations

from typing import Any, TypeVar, overload

from shared.contract import Dialect


class LabelhiveError(Exception):
    """An error a client may see. `code` is the documented code of the raising route's document."""

    status_code: int = 400
    code: int | str = 1005
    message: str = "invalid request"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: int | str | None = None,
        status_code: int | None = None,
        data: Any = None,
        details: str | None = None,
    ) -> None:
        if message is not None:
            self.message = message
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.data = data
        self.details = details
        super().__init__(self.message)

    def code_for(self, dialect: Dialect) -> int | str:
        """The code to show in `dialect`; a domain error's own code everywhere by default."""
        return self.code

    def message_for(self, dialect: Dialect) -> str:
        return self.message

    def status_for(self, dialect: Dialect) -> int:
        return self.status_code


E = TypeVar("E", bound=LabelhiveError)


@overload
def documented_error(code: int | str, message: str, status_code: int = 400) -> type[LabelhiveError]: ...
@overload
def documented_error(code: int | str, message: str, status_code: int = 400, *, base: type[E]) -> type[E]: ...
def documented_error(
    code: int | str, message: str, status_code: int = 400, *, base: type[LabelhiveError] = LabelhiveError
) -> type[LabelhiveError]:
    """A route's documented error as a class: `WrongCode = documented_error(46, "wrong email verify code")`;
    a subclass of `base` where a service renders its documented errors its own way (the face service's
    `FaceApiError`, which adds a `detail`)."""
    name = "".join(w.capitalize() for w in message.replace("'", "").split())
    return type(name, (base,), {"code": code, "message": message, "status_code": status_code})


class _GenericError(LabelhiveError):
    """An error every document has a spelling for: (code, message) per dialect, and an HTTP status
    where a document lists one other than the default."""

    spellings: dict[Dialect, tuple[int | str, str]] = {}
    statuses: dict[Dialect, int] = {}

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        self._explicit_message = message
        self._explicit_status = kwargs.get("status_code") is not None
        super().__init__(message, **kwargs)

    def code_for(self, dialect: Dialect) -> int | str:
        return self.spellings.get(dialect, (self.code, ""))[0]

    def status_for(self, dialect: Dialect) -> int:
        if self._explicit_status:
            return self.status_code
        return self.statuses.get(dialect, self.status_code)

    def message_for(self, dialect: Dialect) -> str:
        documented = self.spellings.get(dialect, (None, self.message))[1]
        if self._explicit_message is None:
            return documented
        # 003 and 000 clients switch on the code, so a specific message is safe there; 001 clients
        # compare the text itself, so the documented wording wins unless a route chose its own.
        return self._explicit_message


class InvalidRequest(_GenericError):
    status_code = 400
    code = 1005
    message = "invalid request"
    spellings = {
        Dialect.CROWD_003: (1005, "invalid request"),
        Dialect.DATASET_000: ("4103", "参数错误"),
        Dialect.EXPERT_001: ("", "参数错误"),
        Dialect.FACE_002: (400, "Invalid request"),
        Dialect.DETECT_004: ("", "Invalid request"),
    }


class NotLoggedIn(_GenericError):
    status_code = 401
    code = 1001
    message = "not_logged_in"
    spellings = {
        Dialect.CROWD_003: (1001, "not_logged_in"),
        Dialect.DATASET_000: ("4101", "用户未登录"),
        Dialect.EXPERT_001: ("", "未登录"),
        Dialect.FACE_002: (401, "Authentication required: a session or an X-API-Key"),
        Dialect.DETECT_004: ("", "Authentication required: a session or an X-API-Key"),
    }


class NoPermission(_GenericError):
    status_code = 403
    code = 1006
    message = "no permission"
    statuses = {Dialect.CROWD_003: 400}  # 003 lists 1006 "no permission" as 400 Bad Request
    spellings = {
        Dialect.CROWD_003: (1006, "no permission"),
        Dialect.DATASET_000: ("4105", "用户身份错误"),
        Dialect.EXPERT_001: ("", "非管理员用户"),
        Dialect.FACE_002: (403, "Permission denied"),
        Dialect.DETECT_004: ("", "Permission denied"),
    }


class UserBanned(_GenericError):
    status_code = 400
    code = 1007
    message = "user is banned"
    spellings = {
        Dialect.CROWD_003: (1007, "user is banned"),
        Dialect.DATASET_000: ("4104", "用户已被封禁"),
        Dialect.EXPERT_001: ("", "登陆失败,账号已被封禁"),
        Dialect.FACE_002: (403, "User is banned"),
        Dialect.DETECT_004: ("", "User is banned"),
    }


class NotFound(_GenericError):
    status_code = 404
    code = 1000
    message = "NOT_FOUND"
    spellings = {
        Dialect.CROWD_003: (1000, "NOT_FOUND"),
        Dialect.DATASET_000: ("4002", "无数据"),
        Dialect.EXPERT_001: ("", "不存在"),
        Dialect.FACE_002: (404, "Not found"),
        Dialect.DETECT_004: ("", "Not found"),
    }


class MethodNotAllowed(_GenericError):
    status_code = 405
    code = 1005
    message = "method not allowed"
    spellings = {
        Dialect.CROWD_003: (1005, "method not allowed"),
        Dialect.DATASET_000: ("4201", "请求方法错误"),
        Dialect.EXPERT_001: ("", "请求方法错误"),
        Dialect.FACE_002: (405, "Method not allowed"),
        Dialect.DETECT_004: ("", "Method not allowed"),
    }


class PayloadTooLarge(_GenericError):
    status_code = 413
    code = 1005
    message = "request body too large"
    spellings = {
        Dialect.CROWD_003: (1005, "request body too large"),
        Dialect.DATASET_000: ("4004", "文件过大"),
        Dialect.EXPERT_001: ("", "数据过大"),
        Dialect.FACE_002: (413, "Request body too large"),
        Dialect.DETECT_004: ("", "Request body too large"),
    }


class RateLimited(_GenericError):
    status_code = 429
    code = 1008
    message = "too many requests"
    spellings = {
        Dialect.CROWD_003: (1008, "too many requests"),
        Dialect.DATASET_000: ("4202", "请求过于频繁"),
        Dialect.EXPERT_001: ("", "请求过于频繁,请稍后再试"),
        Dialect.FACE_002: (429, "Too many requests"),
        Dialect.DETECT_004: ("", "Too many requests"),
    }


class CsrfFailed(_GenericError):
    status_code = 403
    code = 1006
    message = "CSRF token missing or invalid"
    spellings = {
        Dialect.CROWD_003: (1006, "CSRF token missing or invalid"),
        Dialect.DATASET_000: ("4201", "CSRF token missing or invalid"),
        Dialect.EXPERT_001: ("", "CSRF token missing or invalid"),
        Dialect.FACE_002: (403, "CSRF token missing or invalid"),
        Dialect.DETECT_004: ("", "CSRF token missing or invalid"),
    }


class ServiceUnavailable(_GenericError):
    """An upstream service (or a model) is down, slow or missing: 503, never a fake answer."""

    status_code = 503
    code = 1002
    message = "external error"
    spellings = {
        Dialect.CROWD_003: (1002, "external error"),
        Dialect.DATASET_000: ("4301", "第三方系统错误"),
        Dialect.EXPERT_001: ("", "服务暂不可用"),
        Dialect.FACE_002: (503, "Service unavailable"),
        Dialect.DETECT_004: ("", "Service unavailable"),
    }


class InternalError(_GenericError):
    status_code = 500
    code = 1003
    message = "internal error"
    spellings = {
        Dialect.CROWD_003: (1003, "internal error"),
        Dialect.DATASET_000: ("4500", "内部错误"),
        Dialect.EXPERT_001: ("", "内部错误"),
        Dialect.FACE_002: (500, "Internal error"),
        Dialect.DETECT_004: ("", "Internal error"),
    }
