"""One long-lived httpx client per service for calls to other services: bounded timeouts, the
request id propagated, the call signed as coming from this service, optional end-user identity."""

from __future__ import annotations

from typing import Any

import httpx

from shared.errors import ServiceUnavailable
from shared.identity import CALLER_HEADER, IDENTITY_HEADER, Identity, sign_caller, sign_identity
from shared.requestctx import REQUEST_ID_HEADER, current_request_id

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=2.0)


class ServiceClient:
    """Calls one peer service. Connection failures and timeouts become `ServiceUnavailable` (503)."""

    def __init__(
        self,
        peer: str,
        base_url: str,
        caller: str,
        secret: str,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.peer = peer
        self._caller = caller
        self._secret = secret
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=transport)

    async def request(
        self, method: str, path: str, *, identity: Identity | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        headers[CALLER_HEADER] = sign_caller(self._caller, self._secret)
        if request_id := current_request_id.get():
            headers[REQUEST_ID_HEADER] = request_id
        if identity is not None:
            headers[IDENTITY_HEADER] = sign_identity(identity, self._secret)
        try:
            return await self._client.request(method, path, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(
                f"{self.peer} service unavailable", details=type(exc).__name__
            ) from exc

    async def aclose(self) -> None:
        await self._client.aclose()
