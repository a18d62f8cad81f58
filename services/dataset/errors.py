"""The dataset routes' documented errors, and how an ingest refusal becomes one.

000's codes are its `RET` set (`4003` data exists, `4103` parameter error, ...); 003's are its own
(`18` picture/video not found, `32` data type error). Generic kinds (not logged in, no permission, not
found, too large) come from `shared.errors` and are spelled per document there.
"""

from __future__ import annotations

from shared.errors import InvalidRequest, LabelhiveError, PayloadTooLarge, documented_error

from .ingest import DecompressionBomb, IngestError, TooLarge
from .storage import ObjectTooLarge

# 000: a dataset of that name already exists for this owner (RET.DATAEXIST).
DatasetExists = documented_error("4003", "数据集已存在")
PictureNotFound = documented_error(18, "picture not found", 404)
VideoNotFound = documented_error(18, "video not found", 404)
# 003 `POST /task/upload_data`: files of another type than `data_type`, or an unknown `data_type`.
DataTypeError = documented_error(32, "data type error")
RangeNotSatisfiable = documented_error(1005, "requested range not satisfiable", 416)
# Identical bytes were being deleted while this upload stored them: nothing was kept, retry.
UploadRaced = documented_error(1005, "the upload collided with the deletion of an identical file; please retry", 409)


def rejected(exc: IngestError) -> LabelhiveError:
    """A refused file as the route's 4xx: names the file and says why (413 for size caps)."""
    message = f"{exc.filename}: {exc.reason}"
    if isinstance(exc, TooLarge) and not isinstance(exc, DecompressionBomb):
        return PayloadTooLarge(message)
    return InvalidRequest(message)


def too_large(filename: str, exc: ObjectTooLarge) -> LabelhiveError:
    return PayloadTooLarge(f"{filename}: larger than the limit of {exc.max_bytes} bytes")
