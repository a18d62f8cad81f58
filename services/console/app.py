"""The console service: the web console (a single-page app of plain ES modules) that annotators,
requesters and admins work in. It serves the page and its static files and owns no schema; every
call the page makes goes to the public API through the gateway, like any other client."""

from __future__ import annotations

from fastapi import FastAPI

from services.console.api import pages
from services.console.assets import STATIC_DIR, CachedStaticFiles
from shared.service_app import build_service_app
from shared.settings import PlatformSettings


def create_app(settings: PlatformSettings | None = None) -> FastAPI:
    settings = settings or PlatformSettings()
    app = build_service_app(
        name="console",
        settings=settings,
        routers=[pages.router],
        uses_database=False,
        title="Labelhive console",
        description="The web console: pages and static files, no API of its own.",
    )
    app.mount(pages.STATIC_PREFIX, CachedStaticFiles(directory=STATIC_DIR), name="console-static")
    return app
