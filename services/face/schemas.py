"""Document 002's requests and answers.

002 documents GET with a JSON body, and its client examples POST that body; both are accepted, and so
are query parameters (`?collection_name=a&collection_name=b`, `?top_k=3`), which a GET without a body
needs. Fields in the body win over the same fields in the query. The body is read as every service reads
one by hand (shared.edge.read_json_object: the face service's size cap, large bodies parsed off the event
loop).

A body's fields must have the JSON types 002 documents (a list where it says list[string], an int for
`top_k`): anything else is a 400 that names the field, never a request half understood. A query
parameter is text, so there a list field may be one parameter or several, and a number is its digits.

The pydantic models below describe the requests and the answers in the API documentation; the checks
that decide each answer (and its 002 error code) are the functions here, and the two say the same
(tests/face_api/test_face_declared_answers.py holds the answers to their models).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Request
from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from services.face.errors import InvalidCollectionName
from services.face.image_embedding import ImageProblem
from shared.edge import read_json_object
from shared.errors import InvalidRequest
from shared.response_models import Envelope002

# 002 gives no naming rule; this is Milvus's (the engine 002 describes stores its vectors there), plus
# "-": ASCII letters, digits, "_" and "-", starting with a letter or digit, at most 64 characters.
COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
MAX_TARGET_ID = 256
MAX_OWNER_ID = 2**63 - 1


@dataclass(frozen=True)
class Fields:
    """A 002 request's fields: the JSON body's, then the query string's for those the body lacks."""

    values: dict[str, Any]
    from_query: frozenset[str] = frozenset()

    def __contains__(self, field: str) -> bool:
        return field in self.values

    def __getitem__(self, field: str) -> Any:
        return self.values[field]

    def get(self, field: str, default: Any = None) -> Any:
        return self.values.get(field, default)


async def read_fields(request: Request, max_bytes: int) -> Fields:
    body = await read_json_object(request, max_bytes)
    from_query = set()
    for key in request.query_params:
        if key not in body:
            values = request.query_params.getlist(key)
            body[key] = values if len(values) > 1 else values[0]
            from_query.add(key)
    return Fields(body, frozenset(from_query))


# --- fields --------------------------------------------------------------------------------------


def collection_name(fields: Fields, field: str = "collection_name") -> str:
    if field not in fields:
        raise InvalidRequest(f"{field} is required")
    return check_collection_name(fields[field])


def check_collection_name(value: object) -> str:
    if not isinstance(value, str) or not COLLECTION_NAME.fullmatch(value):
        raise InvalidCollectionName(
            f"{value!r}: a collection name is 1-64 ASCII letters, digits, '_' or '-', starting with a letter or digit"
        )
    return value


def _json_type(value: object) -> str:
    """How a JSON value is called in an error message."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return {str: "a string", list: "a list", dict: "an object", type(None): "null"}.get(type(value), "a value")


def _list(fields: Fields, field: str, what: str) -> list[Any]:
    """A list field: a JSON list in the body; in the query, one parameter or several."""
    value = fields[field]
    if field in fields.from_query and isinstance(value, str):
        return [value] if value else []
    if not isinstance(value, list):
        raise InvalidRequest(f"{field} must be a list of {what}, not {_json_type(value)}")
    return value


def _strings(fields: Fields, field: str, what: str) -> list[str]:
    """A list[string] field (it is required)."""
    if field not in fields:
        raise InvalidRequest(f"{field} is required")
    values = _list(fields, field, what)
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise InvalidRequest(f"{field}[{index}] must be a string, not {_json_type(value)}")
    return values


def collection_names(fields: Fields) -> list[str]:
    """collection/status: a list of names ([] or absent: all)."""
    if "collection_name" not in fields:
        return []
    names = _list(fields, "collection_name", "collection names")
    return list(dict.fromkeys(check_collection_name(name) for name in names))


def target_id(value: str, field: str = "target_id") -> str:
    if not value or len(value) > MAX_TARGET_ID:
        raise InvalidRequest(f"{field} must be 1-{MAX_TARGET_ID} characters")
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise InvalidRequest(f"{field} must not contain control characters")
    return value


def targets_to_delete(fields: Fields) -> list[str]:
    """delete/id: one target id (002), or a list of them."""
    value = fields.get("target_id")
    if isinstance(value, str) and "target_id" not in fields.from_query:
        targets = [value]
    elif "target_id" in fields and not isinstance(value, str | list):
        raise InvalidRequest(f"target_id must be a string or a list of strings, not {_json_type(value)}")
    else:
        targets = _strings(fields, "target_id", "target ids")
    targets = list(dict.fromkeys(target_id(t) for t in targets))
    if not targets:
        raise InvalidRequest("target_id is empty")
    return targets


def images_and_targets(fields: Fields, max_images: int) -> tuple[list[str], list[str]]:
    images = _strings(fields, "face_image", "base64 images")
    targets = [target_id(t, f"target_id[{i}]") for i, t in enumerate(_strings(fields, "target_id", "target ids"))]
    if not images:
        raise InvalidRequest("face_image is empty")
    if len(images) != len(targets):
        raise InvalidRequest(
            f"face_image has {len(images)} images but target_id has {len(targets)} ids: they must correspond one to one"
        )
    if len(images) > max_images:
        raise InvalidRequest(f"at most {max_images} images per request, got {len(images)}")
    return images, targets


def _integer(fields: Fields, field: str) -> int | None:
    """An integer field: a JSON integer in the body, digits in the query; None when absent (or null)."""
    value = fields.get(field)
    if field in fields.from_query:
        if isinstance(value, str) and value.isascii() and value.strip().isdigit():
            return int(value)
        raise InvalidRequest(f"{field} must be a whole number")
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise InvalidRequest(f"{field} must be an integer, not {_json_type(value)}")


def top_k(fields: Fields, maximum: int) -> int:
    """1 or more; above `maximum` (002: at most 100 results) it is capped."""
    value = _integer(fields, "top_k")
    if value is None:
        raise InvalidRequest("top_k is required")
    if value < 1:
        raise InvalidRequest("top_k must be a positive integer")
    return min(value, maximum)


def owner_id(fields: Fields) -> int | None:
    """Whose collections an admin means (services/face/collection_operations.py, Scope); None when not given."""
    value = _integer(fields, "owner_id")
    if value is not None and not 0 <= value <= MAX_OWNER_ID:
        raise InvalidRequest("owner_id must be a user id (0: the collections made before collections had owners)")
    return value


def image(fields: Fields, field: str) -> str:
    if field not in fields:
        raise InvalidRequest(f"{field} is required")
    value = fields[field]
    if not isinstance(value, str):
        raise InvalidRequest(f"{field} must be a base64 string, not {_json_type(value)}")
    return value


# --- answers -------------------------------------------------------------------------------------


def ctime(moment: datetime) -> str:
    """002's time format, 'Tue Jun 22 15:55:43 2021' (UTC)."""
    return moment.astimezone(UTC).strftime("%a %b %d %H:%M:%S %Y")


def invalid_block(problems: list[ImageProblem], targets: list[str]) -> dict[str, Any]:
    """002's `invalid`; `invalid_reason` and `invalid_detail` (not in 002) say why each one was refused: the
    reason in a few words (no face, no plausible face, face too small, face blurred ...), the detail with the
    measurement and its threshold."""
    problems = sorted(problems, key=lambda p: p.index)
    return {
        "invalid_num": len(problems),
        "message": {
            "invalid_id": [targets[p.index] for p in problems],
            "invalid_index": [p.index for p in problems],
            "invalid_reason": [p.reason.replace("_", " ") for p in problems],
            "invalid_detail": [p.detail for p in problems],
        },
    }


# --- documentation only: requests ----------------------------------------------------------------

_NAME = Field(
    pattern=f"^{COLLECTION_NAME.pattern}$",
    examples=["face_col"],
    description="the collection (1-64 ASCII letters, digits, '_' or '-')",
)
_TARGET = Field(min_length=1, max_length=MAX_TARGET_ID)
_OWNER = Field(
    None,
    ge=0,
    le=MAX_OWNER_ID,
    description=(
        "admins only (others may name only themselves): whose collection; 0: those made before collections had "
        "owners. Without it: the caller's own, or, for an admin, the only one of that name"
    ),
)


class CollectionBody(BaseModel):
    collection_name: str = _NAME
    owner_id: int | SkipJsonSchema[None] = _OWNER


class StatusBody(BaseModel):
    collection_name: list[Annotated[str, Field(pattern=f"^{COLLECTION_NAME.pattern}$")]] = Field(
        default_factory=list, examples=[["face_col"]], description="[]: every collection"
    )
    owner_id: int | SkipJsonSchema[None] = _OWNER


class FacesBody(BaseModel):
    collection_name: str = _NAME
    face_image: list[str] = Field(
        min_length=1, description="base64 images, one face each (the largest face is used); at most 100 per request"
    )
    target_id: list[Annotated[str, _TARGET]] = Field(
        min_length=1,
        examples=[["dmai", "dmai", "dmai1"]],
        description="one per image; a target id holds at most 5 faces",
    )
    owner_id: int | SkipJsonSchema[None] = _OWNER


class DeleteIdBody(BaseModel):
    collection_name: str = _NAME
    target_id: Annotated[str, _TARGET] | list[Annotated[str, _TARGET]] = Field(
        examples=["huge"], description="a target id (or a list of them)"
    )
    owner_id: int | SkipJsonSchema[None] = _OWNER


class SearchBody(BaseModel):
    collection_name: str = _NAME
    face_image: str = Field(description="base64 image")
    top_k: int = Field(ge=1, examples=[1], description="results wanted; at most 100 are returned")
    owner_id: int | SkipJsonSchema[None] = _OWNER


class CompareBody(BaseModel):
    face_image1: str = Field(description="base64 image")
    face_image2: str = Field(description="base64 image")


# --- documentation only: answers -----------------------------------------------------------------


class VersionAnswer(Envelope002):
    version: str = Field(examples=["V0.1.0"])


class StatusAnswer(Envelope002):
    status: str = Field(description="what was done", examples=["Create collection successfully!"])


class CollectionStatus(BaseModel):
    collection_name: str
    create_time: str = Field(examples=["Tue Jun 22 15:55:43 2021"], description="UTC")
    update_time: str = Field(examples=["Tue Jun 22 15:55:43 2021"], description="UTC")
    feature_num: int = Field(description="faces stored")
    owner_id: int | SkipJsonSchema[None] = Field(
        None, description="admins only: whose collection (0: made before collections had owners)"
    )


class CollectionStatusAnswer(Envelope002):
    status: list[CollectionStatus]


class InvalidImages(BaseModel):
    """Which images were refused, index by index (`invalid_block`)."""

    invalid_id: list[str] = Field(description="their target ids")
    invalid_index: list[int] = Field(description="their positions in face_image")
    invalid_reason: list[str] = Field(description="why, in a few words (not in 002)")
    invalid_detail: list[str] = Field(description="the measurement and its threshold (not in 002)")


class InvalidBlock(BaseModel):
    invalid_num: int
    message: InvalidImages


class WriteAnswer(Envelope002):
    invalid: InvalidBlock
    quota_exceeded_target_id: list[str] = Field(description="target ids that already hold 5 faces")
    status: str = Field(examples=["Add vectors successfully!"])
    success_num: int = Field(description="faces stored")


class UpdateAnswer(WriteAnswer):
    target_invalid: list[str] = Field(description="target ids the collection does not hold")


class SearchMatch(BaseModel):
    result: str = Field(description="a target id")
    score: float = Field(ge=0, le=1, description="how likely the face is this target's (0-1)")


class SearchAnswer(Envelope002):
    status: list[SearchMatch] = Field(description="best first; [] for an empty collection")


class CompareAnswer(Envelope002):
    score: float = Field(ge=0, le=1, description="how likely the two faces are one person (0-1)")


class FaceError(BaseModel):
    err_code: int = Field(description="002's code (1001-1008), else the HTTP status")
    err_msg: str
    detail: str | SkipJsonSchema[None] = Field(None, description="what exactly was wrong")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": FaceError, "description": description}
    for status, description in [
        (400, "bad input (400), collection quota (1002), invalid collection name (1003), target quota (1007)"),
        (401, "no session and no X-API-Key"),
        (403, "a cross-site write without its CSRF token"),
        (404, "no such collection of the caller's (1005, 1006), or no such target id"),
        (409, "the collection exists (1004), or holds another model's vectors"),
        (413, "request body too large"),
        (503, "database (1001) or face models unavailable"),
    ]
}


def documented(model: type[BaseModel], method: str) -> dict[str, Any]:
    """The operation's request: a JSON body; a GET may send its fields in the query string instead, each
    one there or in the body."""
    schema = model.model_json_schema()
    body = {"content": {"application/json": {"schema": schema}}}
    if method != "GET":
        return {"requestBody": {**body, "required": True}}
    parameters = [
        {"name": name, "in": "query", "required": False, "schema": field}
        for name, field in schema["properties"].items()
    ]
    return {"parameters": parameters, "requestBody": {**body, "required": False}}
