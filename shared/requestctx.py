"""Per-request context: the request id (propagated across services) and when the request started."""

from __future__ import annotations

from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"

current_request_id: ContextVar[str] = ContextVar("current_request_id", default="")
request_started_at: ContextVar[float] = ContextVar("request_started_at", default=0.0)
