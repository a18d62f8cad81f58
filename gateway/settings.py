from __future__ import annotations

from typing import Annotated

from pydantic import field_validator
from pydantic_settings import NoDecode

from shared.settings import SERVICES, PlatformSettings


class GatewaySettings(PlatformSettings):
    port: int = 8000
    # Services the deployment runs; /healthz is green when all of them are ready.
    services: Annotated[list[str], NoDecode] = list(SERVICES)
    # Browser origins allowed to send cookie-authenticated writes without a CSRF token, besides the
    # gateway's own origin.
    allowed_origins: Annotated[list[str], NoDecode] = []
    # Use the first X-Forwarded-For address as the client's (only behind a trusted proxy).
    trust_forwarded_for: bool = False
    upstream_connect_timeout: float = 2.0
    # How long an upstream may take to start answering before the client gets a 503.
    upstream_timeout: float = 60.0
    # Small bodies the gateway reads to rate-limit by account (login, register, codes).
    max_inspected_body: int = 64 * 1024

    @field_validator("services", "allowed_origins", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value
