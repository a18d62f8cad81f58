"""Document 004's `POST /api/detect`: form field `images`, one or many files."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.detect.detection import Detector
from services.detect.schemas import ERROR_ANSWERS, IMAGES_FORM, DetectionResult
from services.detect.uploads import ImageFormReader
from shared.identity import CurrentIdentity

router = APIRouter(tags=["detect (004)"])


@router.post(
    "/api/detect",
    summary="Detect steel-surface defects in one or many images",
    response_model=list[DetectionResult],
    responses=ERROR_ANSWERS,
    openapi_extra={"requestBody": IMAGES_FORM},
)
@router.post("/api/detect/", include_in_schema=False)
async def detect(request: Request, identity: CurrentIdentity) -> JSONResponse:
    """For each image: `defect_count` (connected defect regions), `labels` (classes found:
    inclusion, patches, scratches), `dice` (confidence in 0-1: how closely the predicted
    probabilities agree with the predicted mask, a soft Dice; see the model card), `name`,
    `processing_time` (seconds, this image from upload decoding to its drawn result) and
    `result_image` (base64 JPEG with the defects drawn over the image)."""
    uploads = await ImageFormReader(request.app.state.settings).read(request)
    detector: Detector = request.app.state.detector
    detections = await detector.detect(uploads)
    return JSONResponse([d.as_response() for d in detections])
