"""Document 002's error codes (1001-1008), and the face service's other refusals.

002 lists each code with its message ("错误信息"); that message is the `err_msg` of the answer, word for
word, and `detail` says what exactly was wrong (which name, which target). 002 lists no HTTP status; the
ones here follow the kind of failure (4xx: the request, 5xx: the service).
"""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import SQLAlchemyError

from shared.errors import LabelhiveError, NotFound

DATABASE_ERRORS: tuple[type[BaseException], ...] = (
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


class DatabaseError(FaceApiError):
    code, message, status_code = 1001, "Database error", 503


class CollectionQuotaExceeded(FaceApiError):
    code, message, status_code = 1002, "Collection quota exceeded", 400


class InvalidCollectionName(FaceApiError):
    code, message, status_code = 1003, "Invalid collection name", 400


class CollectionExists(FaceApiError):
    code, message, status_code = 1004, "Collection already exists", 409


class CheckCollectionName(FaceApiError):
    """1005: the named collection is not there (a query, a delete, a clear, a search)."""

    code, message, status_code = 1005, "Please check collection name", 404


class CollectionMissing(FaceApiError):
    """1006: vectors were sent to a collection that was never created ("create it first")."""

    code, message, status_code = 1006, "Collection does not exist", 404


class TargetQuotaExceeded(FaceApiError):
    code, message, status_code = 1007, "Target_id quota exceeded", 400


class UpdateFailed(FaceApiError):
    code, message, status_code = 1008, "Update vectors unsuccessfully", 500


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
