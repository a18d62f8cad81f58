"""The console's files: the page template and the static tree, with a version string that changes
whenever a file changes, so that browsers may cache every asset for good (the URL carries the version)."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

ROOT = Path(__file__).resolve().parent
STATIC_DIR = ROOT / "static"
INDEX_TEMPLATE = ROOT / "templates" / "index.html"


@functools.cache
def assets_version() -> str:
    """A short hash of every static file's path and bytes (computed once per process)."""
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(STATIC_DIR)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@functools.cache
def index_html() -> str:
    return INDEX_TEMPLATE.read_text(encoding="utf-8").replace("{{version}}", assets_version())


class CachedStaticFiles(StaticFiles):
    """Static files that a versioned URL (`?v=<assets_version>`) lets the browser keep for a year."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            versioned = b"v=" in scope.get("query_string", b"")
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable" if versioned else "no-cache"
        return response
