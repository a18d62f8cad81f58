"""The dataset routes' documented errors, and how an ingest refusal becomes one.

000's codes are its `RET` set (`4003` data exists, `4103` parameter error, ...); 003's are its own
(`18` picture/video not found, `32` data type error). Generic kinds (not logged in, no permission, not
found, too large) come from `shared.errors` and are spelled per document there.
"""

from __future__ import annotations

from shared.errors import InvalidRequest, LabelhiveError, PayloadTooLarge

from .ingest import DecompressionBomb, IngestError, TooLarge
from .storage import ObjectTooLarge


class DatasetExists(LabelhiveError):
    """000: a dataset of that name already exists for this owner (RET.DATAEXIST)."""

    status_code = 400
    code = "4003"
    message = "数据集已存在"


class PictureNotFound(LabelhiveError):
    status_code = 404
    code = 18
    message = "picture not found"


class VideoNotFound(LabelhiveError):
    status_code = 404
    code = 18
    message = "video not found"


class DataTypeError(LabelhiveError):
    """003 `POST /task/upload_data`: files of another type than `data_type`, or an unknown `data_type`."""

    status_code = 400
    code = 32
    message = "data type error"


class RangeNotSatisfiable(LabelhiveError):
    status_code = 416
    code = 1005
    message = "requested range not satisfiable"


class UploadRaced(LabelhiveError):
    """Identical bytes were being deleted while this upload stored them: nothing was kept, retry."""

    status_code = 409
    code = 1005
    message = "the upload collided with the deletion of an identical file; please retry"


def rejected(exc: IngestError) -> LabelhiveError:
    """A refused file as the route's 4xx: names the file and says why (413 for size caps)."""
    message = f"{exc.filename}: {exc.reason}"
    if isinstance(exc, TooLarge) and not isinstance(exc, DecompressionBomb):
        return PayloadTooLarge(message)
    return InvalidRequest(message)


def too_large(filename: str, exc: ObjectTooLarge) -> LabelhiveError:
    return PayloadTooLarge(f"{filename}: larger than the limit of {exc.max_bytes} bytes")
