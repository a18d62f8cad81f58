"""Which service owns a path (CONTRACT.md, "Which service owns what"). One owner per path."""

from __future__ import annotations

import re

# Ordered: the first match wins. (methods or None for any, path regex, service)
_ROUTES: list[tuple[frozenset[str] | None, re.Pattern[str], str]] = [
    (frozenset({"POST"}), re.compile(r"^/api/users/?$"), "auth"),
    (frozenset({"POST"}), re.compile(r"^/login/?$"), "auth"),
    (None, re.compile(r"^/user/"), "auth"),
    (None, re.compile(r"^/advertise/"), "auth"),
    (None, re.compile(r"^/data_module/"), "dataset"),
    (None, re.compile(r"^/dataset/"), "dataset"),
    (None, re.compile(r"^/task/upload_data/?$"), "dataset"),
    (None, re.compile(r"^/picbed(/|$)"), "dataset"),
    (None, re.compile(r"^/video(/|$)"), "dataset"),
    (None, re.compile(r"^/task(/|$)"), "tasks"),
    (None, re.compile(r"^/review/"), "tasks"),
    (None, re.compile(r"^/data/(list|label)/?$"), "tasks"),
    (None, re.compile(r"^/api/v1/engine/recocomp(/|$)"), "face"),
    (None, re.compile(r"^/api/detect/?$"), "detect"),
    (None, re.compile(r"^/api/data/"), "stats"),
    (frozenset({"GET", "HEAD"}), re.compile(r"^/(console(/|$)|$)"), "console"),
]


def owner_of(method: str, path: str) -> str | None:
    """The service that serves `path`, or None (404). `/internal/*` is never routed."""
    if path.startswith("/internal"):
        return None
    method = method.upper()
    for methods, pattern, service in _ROUTES:
        if (methods is None or method in methods) and pattern.search(path):
            return service
    return None
