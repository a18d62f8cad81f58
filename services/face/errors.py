"""Document 002's error codes (1001-1008), and the face service's other refusals.

002 lists each code with its message ("错误信息"); that message is the `err_msg` of the answer, word for
word, and `detail` says what exactly was wrong (which name, which target). 002 lists no HTTP status; the
ones here follow the kind of failure (4xx: the request, 5xx: the service).
"""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import SQLAlchemyError

from shared.errors import LabelhiveError, NotFound, documented_error

DATABASE_ERRORS: tuple[type[Exception], ...] = (
    SQLAlchemyError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    ConnectionError,
)


def is_database_error(exc: BaseException) -> bool:
    return isinstance(exc, DATABASE_ERRORS)


class FaceApiError(LabelhiveError):
    """One of 002's documented failures; rendered as {"err_code", "err_msg", "detail"}."""

    def __init__(self, detail: str = "", **kwargs: object) -> None:
        super().__init__(details=detail or None, **kwargs)  # type: ignore[arg-type]


DatabaseError = documented_error(1001, "Database error", 503, base=FaceApiError)
CollectionQuotaExceeded = documented_error(1002, "Collection quota exceeded", base=FaceApiError)
InvalidCollectionName = documented_error(1003, "Invalid collection name", base=FaceApiError)
CollectionExists = documented_error(1004, "Collection already exists", 409, base=FaceApiError)
# 1005: the named collection is not there (a query, a delete, a clear, a search).
CheckCollectionName = documented_error(1005, "Please check collection name", 404, base=FaceApiError)
# 1006: vectors were sent to a collection that was never created ("create it first").
CollectionMissing = documented_error(1006, "Collection does not exist", 404, base=FaceApiError)
TargetQuotaExceeded = documented_error(1007, "Target_id quota exceeded", base=FaceApiError)
UpdateFailed = documented_error(1008, "Update vectors unsuccessfully", 500, base=FaceApiError)


class ModelMismatch(LabelhiveError):
    """A collection's vectors come from another model than the one the service runs."""

    status_code = 409
    code = 409


class ModelUnavailable(LabelhiveError):
    """The model files are missing or unusable: 503 until `make models` has run."""

    status_code = 503
    code = 503


class TargetNotFound(NotFound):
    """delete/id of a target id the collection does not hold (002 lists no code: 404)."""
