"""Document 004's `POST /api/detect`: form field `images`, one or many files."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from services.detect.detection import Detector, InvalidImage, Upload
from shared.identity import CurrentIdentity

router = APIRouter(tags=["detect (004)"])


async def _uploads(request: Request) -> list[Upload]:
    settings = request.app.state.settings
    try:
        form = await request.form(max_files=settings.max_images_per_request)
    except Exception as exc:  # malformed multipart or too many files
        raise InvalidImage("Invalid form data", details=str(exc)) from None
    files = [f for f in form.getlist("images") if isinstance(f, UploadFile)]
    if not files:
        raise InvalidImage("No images provided", details="the form field 'images' holds no file")
    uploads = []
    for file in files:
        name = file.filename or "uploaded_image.jpg"
        if file.size is not None and file.size > settings.max_image_bytes:
            raise InvalidImage(f"Invalid image data for {name}",
                               details=f"larger than {settings.max_image_bytes} bytes")
        uploads.append(Upload(name, await file.read()))
    return uploads


@router.post("/api/detect", summary="Detect steel-surface defects in one or many images")
@router.post("/api/detect/", include_in_schema=False)
async def detect(request: Request, identity: CurrentIdentity) -> JSONResponse:
    """For each image: `defect_count` (connected defect regions), `labels` (classes found:
    inclusion, patches, scratches), `dice` (confidence in 0-1: how closely the predicted
    probabilities agree with the predicted mask, a soft Dice; see the model card), `name`,
    `processing_time` (seconds, this image from upload decoding to its drawn result) and
    `result_image` (base64 JPEG with the defects drawn over the image)."""
    detector: Detector = request.app.state.detector
    detections = await detector.detect(await _uploads(request))
    return JSONResponse([d.as_response() for d in detections])
