"""A stand-in for a service that does not exist yet, served on the port the platform gave it, so that the
dataset service's real client code talks to it over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.applications import Starlette

from shared.identity import CALLER_HEADER, verify_caller


def port_for(platform, service: str) -> int:
    if service in platform.services:
        pytest.skip(f"the {service} service runs in this platform: no stand-in needed")
    return platform.service_ports[service]


def caller_of(request, platform) -> str:
    """The signed caller of an internal call (raises if the signature is not the deployment's)."""
    return verify_caller(request.headers[CALLER_HEADER], platform.secret)


@contextlib.asynccontextmanager
async def serving(app: Starlette, port: int) -> AsyncIterator[None]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        await task
