"""Which contract document (dialect) a path belongs to, from CONTRACT.md.

The gateway needs it to render its own errors (401, 429, 503, CSRF) in the envelope of the route a
client hit, and every service needs it to render validation errors; so the table lives here, once.
"""

from __future__ import annotations

import re
from enum import StrEnum


class Dialect(StrEnum):
    DATASET_000 = "000"
    EXPERT_001 = "001"
    FACE_002 = "002"
    CROWD_003 = "003"
    DETECT_004 = "004"


# Ordered: the first match wins. (methods or None for any, path regex, dialect)
_DIALECT_RULES: list[tuple[frozenset[str] | None, re.Pattern[str], Dialect]] = [
    (None, re.compile(r"^/api/users/?$"), Dialect.DATASET_000),
    (None, re.compile(r"^/login/?$"), Dialect.DATASET_000),
    (None, re.compile(r"^/data_module(/|$)"), Dialect.DATASET_000),
    (frozenset({"GET", "HEAD"}), re.compile(r"^/user/(login|logout)/?$"), Dialect.EXPERT_001),
    (None, re.compile(r"^/user/(get-current|list|register-manager)/?$"), Dialect.EXPERT_001),
    # Exports are new endpoints under 001's prefix: 003's envelope (CONTRACT.md, "New endpoints").
    (None, re.compile(r"^/dataset/export(/|$)"), Dialect.CROWD_003),
    (None, re.compile(r"^/dataset(/|$)"), Dialect.EXPERT_001),
    (None, re.compile(r"^/task/(list|list-by-dataset|assign|reassign|urgent)/?$"), Dialect.EXPERT_001),
    (None, re.compile(r"^/data/(list|label)/?$"), Dialect.EXPERT_001),
    (None, re.compile(r"^/api/v1/engine/recocomp(/|$)"), Dialect.FACE_002),
    (None, re.compile(r"^/api/(detect|data)(/|$)"), Dialect.DETECT_004),
]


def dialect_for(method: str, path: str) -> Dialect:
    """The dialect of a route; 003 for everything else (including new endpoints, per CONTRACT.md).

    `POST /user/register` is 003 here; the auth service switches to 001 when the body speaks 001.
    """
    method = method.upper()
    for methods, pattern, dialect in _DIALECT_RULES:
        if (methods is None or method in methods) and pattern.search(path):
            return dialect
    return Dialect.CROWD_003
