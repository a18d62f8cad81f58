"""What `POST /api/detect` accepts and answers, as its OpenAPI description declares it (004)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from services.detect.uploads import IMAGES_FIELD


class DetectionResult(BaseModel):
    defect_count: int = Field(description="connected defect regions")
    dice: float = Field(ge=0, le=1, description="confidence in 0-1: a soft Dice of the probabilities and the mask")
    labels: list[str] = Field(description="classes found: inclusion, patches, scratches")
    name: str = Field(description="the file's name, as uploaded")
    processing_time: float = Field(description="seconds, this image from upload decoding to its drawn result")
    result_image: str = Field(description="base64 JPEG with the defects drawn over the image")


class DetectError(BaseModel):
    """004's error answer."""

    error: str
    details: str


# The route reads its form off the stream itself (services/detect/uploads.py), so FastAPI cannot
# infer this body: it is declared by hand.
IMAGES_FORM: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": [IMAGES_FIELD],
                "properties": {
                    IMAGES_FIELD: {
                        "type": "array",
                        "description": "one or many image files (JPEG, PNG, BMP, ...), each with its file name",
                        "items": {"type": "string", "format": "binary"},
                    },
                },
            },
        },
    },
}

ERROR_ANSWERS: dict[int | str, dict[str, Any]] = {
    400: {"model": DetectError, "description": "no images, an invalid or oversized image, or a malformed form"},
    401: {"model": DetectError, "description": "neither a session nor an X-API-Key"},
    413: {"model": DetectError, "description": "the request body is larger than the limit"},
    503: {"model": DetectError, "description": "the defect model is not installed, or a backing store is down"},
}
