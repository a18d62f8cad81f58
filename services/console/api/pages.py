"""The console's one page: `/` (and `/console`), the shell that loads the app's modules."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse

from services.console.assets import index_html

STATIC_PREFIX = "/console/static"

router = APIRouter(include_in_schema=False)

# The page names what it loads and where it may connect: nothing outside this origin.
SECURITY_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
    "script-src 'self'; frame-src 'self'; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@router.get("/")
@router.head("/")
async def console_page() -> HTMLResponse:
    return HTMLResponse(index_html(), headers=SECURITY_HEADERS)


@router.get("/console")
@router.get("/console/")
async def console_alias() -> RedirectResponse:
    return RedirectResponse("/", status_code=308)
