"""Document 002's requests and answers.

002 documents GET with a JSON body, and its client examples POST that body; both are accepted, and so
are query parameters (`?collection_name=a&collection_name=b`, `?top_k=3`), which a GET without a body
needs. Fields in the body win over the same fields in the query. The body is read with a size cap and,
when large (base64 images), parsed off the event loop.

The pydantic models below only describe the bodies in the API documentation; the checks that decide
each answer (and its 002 error code) are the functions here.
"""

from __future__ import annotations

import asyncio
import json
import re
import unicodedata
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from pydantic import BaseModel, Field

from services.face.errors import InvalidCollectionName
from services.face.recognition import ImageProblem
from shared.errors import InvalidRequest, PayloadTooLarge

# 002 gives no naming rule; this is Milvus's (the engine 002 describes stores its vectors there), plus
# "-": ASCII letters, digits, "_" and "-", starting with a letter or digit, at most 64 characters.
COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
MAX_TARGET_ID = 256
_PARSE_IN_THREAD = 256 * 1024


async def read_body(request: Request, max_bytes: int) -> dict[str, Any]:
    """The request's JSON object (body first, then query parameters for the missing fields)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"request body exceeds {max_bytes} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"request body exceeds {max_bytes} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    body: dict[str, Any] = {}
    if raw.strip():
        try:
            parsed = await asyncio.to_thread(json.loads, raw) if len(raw) > _PARSE_IN_THREAD else json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise InvalidRequest("body is not valid JSON") from None
        if not isinstance(parsed, dict):
            raise InvalidRequest("body must be a JSON object")
        body = parsed
    for key in request.query_params:
        if key not in body:
            values = request.query_params.getlist(key)
            body[key] = values if len(values) > 1 else values[0]
    return body


# --- fields --------------------------------------------------------------------------------------


def collection_name(body: dict[str, Any], field: str = "collection_name") -> str:
    if field not in body:
        raise InvalidRequest(f"{field} is required")
    return check_collection_name(body[field])


def check_collection_name(value: object) -> str:
    if not isinstance(value, str) or not COLLECTION_NAME.fullmatch(value):
        raise InvalidCollectionName(
            f"{value!r}: a collection name is 1-64 ASCII letters, digits, '_' or '-', starting with a letter "
            "or digit")
    return value


def collection_names(body: dict[str, Any]) -> list[str]:
    """collection/status: a list of names ([] or absent: all); a single string is one name."""
    value = body.get("collection_name", [])
    if isinstance(value, str):
        value = [value] if value else []
    if not isinstance(value, list):
        raise InvalidRequest("collection_name must be a list of collection names")
    return list(dict.fromkeys(check_collection_name(v) for v in value))


def string_list(body: dict[str, Any], field: str) -> list[Any]:
    if field not in body:
        raise InvalidRequest(f"{field} is required")
    value = body[field]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise InvalidRequest(f"{field} must be a list")
    return value


def target_id(value: object, field: str = "target_id") -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRequest(f"{field} must be a string")
    text = str(value)
    if not text or len(text) > MAX_TARGET_ID:
        raise InvalidRequest(f"{field} must be 1-{MAX_TARGET_ID} characters")
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise InvalidRequest(f"{field} must not contain control characters")
    return text


def images_and_targets(body: dict[str, Any], max_images: int) -> tuple[list[Any], list[str]]:
    images = string_list(body, "face_image")
    targets = [target_id(t, "target_id[]") for t in string_list(body, "target_id")]
    if not images:
        raise InvalidRequest("face_image is empty")
    if len(images) != len(targets):
        raise InvalidRequest(f"face_image has {len(images)} images but target_id has {len(targets)} ids: "
                             "they must correspond one to one")
    if len(images) > max_images:
        raise InvalidRequest(f"at most {max_images} images per request, got {len(images)}")
    return images, targets


def top_k(body: dict[str, Any], maximum: int) -> int:
    """1 or more; above `maximum` (002: at most 100 results) it is capped."""
    if "top_k" not in body:
        raise InvalidRequest("top_k is required")
    value = body["top_k"]
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest("top_k must be a positive integer")
    return min(value, maximum)


def image(body: dict[str, Any], field: str) -> Any:
    if field not in body:
        raise InvalidRequest(f"{field} is required")
    return body[field]


# --- answers -------------------------------------------------------------------------------------


def ctime(moment: datetime) -> str:
    """002's time format, 'Tue Jun 22 15:55:43 2021' (UTC)."""
    return moment.astimezone(UTC).strftime("%a %b %d %H:%M:%S %Y")


def invalid_block(problems: list[ImageProblem], targets: list[str]) -> dict[str, Any]:
    """002's `invalid`; `invalid_reason` (not in 002) says why each one was refused."""
    problems = sorted(problems, key=lambda p: p.index)
    return {
        "invalid_num": len(problems),
        "message": {
            "invalid_id": [targets[p.index] for p in problems],
            "invalid_index": [p.index for p in problems],
            "invalid_reason": [p.reason.replace("_", " ") for p in problems],
        },
    }


# --- documentation only --------------------------------------------------------------------------


class CollectionBody(BaseModel):
    collection_name: str = Field(examples=["face_col"])


class StatusBody(BaseModel):
    collection_name: list[str] = Field(default_factory=list, examples=[["face_col"]],
                                       description="[]: every collection")


class FacesBody(BaseModel):
    collection_name: str = Field(examples=["face_col"])
    face_image: list[str] = Field(description="base64 images, one face each (the largest face is used)")
    target_id: list[str] = Field(examples=[["dmai", "dmai", "dmai1"]],
                                 description="one per image; a target id holds at most 5 faces")


class DeleteIdBody(BaseModel):
    collection_name: str = Field(examples=["face_col"])
    target_id: str = Field(examples=["huge"])


class SearchBody(BaseModel):
    collection_name: str = Field(examples=["face_col"])
    face_image: str = Field(description="base64 image")
    top_k: int = Field(ge=1, examples=[1], description="results wanted; at most 100 are returned")


class CompareBody(BaseModel):
    face_image1: str
    face_image2: str


def documented(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"content": {"application/json": {"schema": model.model_json_schema()}}}}
