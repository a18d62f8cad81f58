"""The five response envelopes of CONTRACT.md: success helpers and the error renderer."""

from __future__ import annotations

import time
from typing import Any

from fastapi.responses import JSONResponse

from shared.contract import Dialect
from shared.errors import LabelhiveError
from shared.requestctx import current_request_id, request_started_at


def elapsed_ms() -> int:
    started = request_started_at.get()
    return int((time.perf_counter() - started) * 1000) if started else 0


def envelope_000(err_no: int | str, err_desc: str, path: str, **fields: Any) -> dict[str, Any]:
    """000's envelope. Its user routes spell the id `requestID`, its data_module routes `request_id`."""
    id_key = "request_id" if path.startswith("/data_module") else "requestID"
    return {
        "err_no": err_no,
        "err_desc": err_desc,
        id_key: current_request_id.get() or "",
        "time_used": elapsed_ms(),
        **fields,
    }


def ok_003(data: Any = None, message: str = "succeed", status_code: int = 200) -> JSONResponse:
    return JSONResponse({"code": 0, "message": message, "data": {} if data is None else data}, status_code)


def error_body(dialect: Dialect, error: LabelhiveError, path: str) -> dict[str, Any]:
    code = error.code_for(dialect)
    message = error.message_for(dialect)
    if dialect is Dialect.CROWD_003:
        return {"code": code, "message": message, "data": {} if error.data is None else error.data}
    if dialect is Dialect.DATASET_000:
        return envelope_000(str(code), message, path)
    if dialect is Dialect.EXPERT_001:
        return {"response": message}
    if dialect is Dialect.FACE_002:
        return {"err_code": code, "err_msg": message}
    details = error.details if error.details is not None else message
    return {"error": message, "details": details}


def error_response(dialect: Dialect, error: LabelhiveError, path: str) -> JSONResponse:
    headers = {"Retry-After": "60"} if error.status_code in (429, 503) else None
    return JSONResponse(error_body(dialect, error, path), error.status_for(dialect), headers=headers)
