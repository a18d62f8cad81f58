"""The success answers of the five documents (CONTRACT.md) as pydantic models, so that a route's OpenAPI
operation says what it returns, envelope included, and a generated client gets typed answers.

A route declares its answer with `response_model=`, the document's envelope around the service's own
data model (from its schemas.py):

    @router.post("/user/login", response_model=Envelope003[LoginAnswer])
    @router.post("/login", response_model=UserAnswer000)       # 000: a subclass adding its fields
    @router.get("/task/list", response_model=Envelope001[list[MissionEntry]])
    @router.post(..., response_model=Envelope002)               # 002: a subclass adding its fields
    @router.post("/api/detect", response_model=list[DetectionResult])  # 004 has no envelope

A route whose answer comes in either of two documents' envelopes (`POST /user/register`) declares their
union: `response_model=Envelope003[X] | Envelope001[str]`.

The routes build their JSONResponse by hand (shared.envelopes), and FastAPI neither validates nor
re-serialises a Response a route returns: the declaration documents the answer and costs nothing per
request. It must be true all the same: tests/openapi checks every success answer of the routes that
declare one against the declared schema, so a declaration that drifts from the code fails there.

The models leave `additionalProperties` open, so a client keeps working when an answer grows a field;
the tests hold the declarations complete all the same (an undeclared field fails them).
"""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

DataT = TypeVar("DataT")


class Empty(BaseModel):
    """The `data` of a 003 answer that has nothing to say: `{}` (`Envelope003[Empty]`)."""


class Envelope003(BaseModel, Generic[DataT]):
    """003's envelope, also that of every endpoint no document has. `code` is 0 on success."""

    code: int = Field(description="0 on success, else the document's error code")
    message: str
    data: DataT


class Envelope001(BaseModel, Generic[DataT]):
    """001's envelope: `response` holds the answer (a status text, or the data); some routes add
    fields beside it (subclass it to declare them)."""

    response: DataT


class Envelope000User(BaseModel):
    """000's envelope on its user routes (`/api/users`, `/login`): `err_no` is the text "0" on success
    and the request's id is spelt `requestID`. Subclass it to declare the route's fields."""

    model_config = ConfigDict(populate_by_name=True)

    err_no: str = Field(description='"0" on success')
    err_desc: str
    request_id: str = Field(alias="requestID")
    time_used: int = Field(description="milliseconds the request took")


class Envelope000Data(BaseModel):
    """000's envelope on its `/data_module/*` routes: `err_no` is the number 0 on success and the id is
    spelt `request_id`. Subclass it to declare the route's fields."""

    err_no: int = Field(description="0 on success")
    err_desc: str
    request_id: str
    time_used: int = Field(description="milliseconds the request took")


class Envelope002(BaseModel):
    """002's envelope: `err_code` 0 on success, the route's fields beside it (subclass it to declare
    them)."""

    err_code: int = Field(description="0 on success")
