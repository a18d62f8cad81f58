"""Document 003's image bed (`/picbed/`) and media bed (`/video/`); see `services/dataset/media.py`.

Reading a URL needs no session (pages embed them); uploading needs one; deleting needs the uploader (or
an admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from services.dataset import media
from services.dataset.api.deps import DecodeSlots, Repo, Settings, Store, User
from services.dataset.errors import PictureNotFound, VideoNotFound
from services.dataset.forms import Upload
from services.dataset.schemas import StoredUrl
from shared.envelopes import ok_003
from shared.images import IMAGE_FORMATS
from shared.openapi import form_body
from shared.response_models import Empty, Envelope003

router = APIRouter(tags=["image and media bed (003)"])

# What the GET routes really answer: the stored bytes under their own type (errors stay 003's JSON).
_IMAGE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the image",
        "content": {media_type: {} for _, media_type in IMAGE_FORMATS.values()},  # what an upload may be
    }
}
_MEDIA: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the media file (or the requested range)",
        "content": {
            kind: {}
            for kind in (
                "video/mp4",
                "video/quicktime",
                "video/webm",
                "video/x-matroska",
                "video/x-msvideo",
                "audio/mp4",
                "application/ogg",
                "audio/mpeg",
                "audio/wav",
                "audio/flac",
            )
        },
    },
    206: {"description": "a byte range of the media file"},
}


@router.post(
    "/picbed/",
    summary="Upload an image",
    response_model=Envelope003[StoredUrl],
    openapi_extra=form_body({"img": ("file", "the image")}, ("img",)),
)
@router.post("/picbed", include_in_schema=False)
async def upload_picture(
    identity: User, upload: Upload, repo: Repo, settings: Settings, slots: DecodeSlots
) -> JSONResponse:
    url = await media.store_picture(upload, repo, identity, settings, slots)
    return ok_003({"url": url}, message="Succeed")


@router.get("/picbed/{name}", summary="An image of the image bed", response_class=Response, responses=_IMAGE)
@router.head("/picbed/{name}", include_in_schema=False)
async def get_picture(name: str, request: Request, repo: Repo, store: Store) -> Response:
    found = await media.find(repo, "picbed", name, PictureNotFound)
    return await media.object_response(request, store, found, PictureNotFound, cache_control="public, max-age=86400")


@router.delete(
    "/picbed/{name}", summary="Delete an image (its uploader or an admin)", response_model=Envelope003[Empty]
)
async def delete_picture(name: str, request: Request, identity: User, repo: Repo, store: Store) -> JSONResponse:
    await media.delete(request, repo, store, "picbed", name, identity, PictureNotFound)
    return ok_003(message="Succeed")


@router.post(
    "/video/",
    summary="Upload a media file (streamed to storage)",
    response_model=Envelope003[StoredUrl],
    openapi_extra=form_body({"video": ("file", "mp4, mov, m4a, webm, mkv, ogg, mp3, wav, flac or avi")}, ("video",)),
)
@router.post("/video", include_in_schema=False)
async def upload_video(
    request: Request, identity: User, upload: Upload, repo: Repo, settings: Settings
) -> JSONResponse:
    url = await media.store_video(request, upload, repo, identity, settings)
    return ok_003({"url": url}, message="succeed")


@router.get("/video/{name}", summary="A media file, with HTTP Range support", response_class=Response, responses=_MEDIA)
@router.head("/video/{name}", include_in_schema=False)
async def get_video(name: str, request: Request, repo: Repo, store: Store) -> Response:
    found = await media.find(repo, "video", name, VideoNotFound)
    return await media.object_response(request, store, found, VideoNotFound)


@router.delete(
    "/video/{name}", summary="Delete a media file (its uploader or an admin)", response_model=Envelope003[Empty]
)
async def delete_video(name: str, request: Request, identity: User, repo: Repo, store: Store) -> JSONResponse:
    await media.delete(request, repo, store, "video", name, identity, VideoNotFound)
    return ok_003(message="succeed")
