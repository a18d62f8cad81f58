from __future__ import annotations

import ipaddress
from ipaddress import IPv4Network, IPv6Network
from typing import Annotated

from pydantic import field_validator
from pydantic_settings import NoDecode

from shared.settings import SERVICES, PlatformSettings


class GatewaySettings(PlatformSettings):
    port: int = 8000
    # Services the deployment runs; /healthz is green when all of them are ready.
    services: Annotated[list[str], NoDecode] = list(SERVICES)
    # Browser origins allowed to send cookie-authenticated writes without a CSRF token, besides the
    # gateway's own.
    allowed_origins: Annotated[list[str], NoDecode] = []
    # Reverse proxies (addresses or CIDRs) whose X-Forwarded-For is believed when they are the direct
    # peer: the client is the right-most address in it that is not one of them. Empty: the peer is
    # the client, whatever the header says.
    trusted_proxies: Annotated[list[IPv4Network | IPv6Network], NoDecode] = []
    upstream_connect_timeout: float = 2.0
    # How long an upstream may take to start answering before the client gets a 503.
    upstream_timeout: float = 60.0
    # How long a resolved session or API key is reused without asking Redis; revocations reach the
    # cache at once (shared/sessions.py). 0 turns the cache off.
    credential_cache_seconds: float = 5.0

    @field_validator("services", "allowed_origins", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [ipaddress.ip_network(item.strip(), strict=False) for item in value.split(",") if item.strip()]
        return value
