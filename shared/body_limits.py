"""How large a request body each route may send: one table, read by the gateway (from Content-Length
and while streaming) and by every service's edge (shared/edge.py), so the two never disagree.

Most routes take a small JSON body; the upload routes below declare more. A service's own setting
(e.g. `LABELHIVE_MAX_IMAGE_BYTES`) may refuse less than the table allows, never more: the table is
the outer bound, sized from those settings' defaults plus room for the multipart framing.
"""

from __future__ import annotations

import re

MB = 1024 * 1024

# Any route not in the table: a JSON body, a form of a few fields, or none at all.
DEFAULT_BODY_LIMIT = 1 * MB
# Room for a multipart body's boundaries, part headers and small text fields beside its files.
_FORM_OVERHEAD = 1 * MB
# 003's task body (create and modify) lists every question: up to 200,000 files (tasks' TaskBody),
# about 60 bytes each with the tags upload_data returns.
TASK_BODY_LIMIT = 32 * MB
# The largest body a route reads whole (JSON, or a form of fields): 002's base64 images. The larger
# limits below are for multipart uploads, which stream; any other body above this is refused, so
# that a raw body sent to an upload route is never held in memory up to the upload's limit.
WHOLE_BODY_LIMIT = 64 * MB

# Ordered: the first match wins. (methods or None for any, path regex, limit in bytes)
_ROUTE_LIMITS: list[tuple[frozenset[str] | None, re.Pattern[str], int]] = [
    # 000: image uploads (dataset: max_upload_request_bytes); a dataset's label file.
    (frozenset({"POST"}), re.compile(r"^/data_module/upload_images?/[^/]+/?$"), 1024 * MB),
    (frozenset({"POST"}), re.compile(r"^/data_module/create_dataset/?$"), 1 * MB + _FORM_OVERHEAD),
    # 001: a Q&A dataset is one JSON body (dataset: max_qa_body_bytes).
    (frozenset({"POST"}), re.compile(r"^/dataset/upload/?$"), 64 * MB),
    # 003: a task's zip archive (max_archive_bytes), the image bed (max_image_bytes), the media bed
    # (max_media_bytes), CSV answers and standard answers (tasks: MAX_CSV_BYTES).
    (frozenset({"POST"}), re.compile(r"^/task/upload_data/?$"), 1024 * MB + _FORM_OVERHEAD),
    (frozenset({"POST"}), re.compile(r"^/task/?$"), TASK_BODY_LIMIT),
    (frozenset({"PUT"}), re.compile(r"^/task/[0-9]+/?$"), TASK_BODY_LIMIT),
    (frozenset({"POST"}), re.compile(r"^/picbed/?$"), 20 * MB + _FORM_OVERHEAD),
    (frozenset({"POST"}), re.compile(r"^/video/?$"), 4096 * MB + _FORM_OVERHEAD),
    (frozenset({"POST"}), re.compile(r"^/task/upload_res/[^/]+/?$"), 32 * MB + _FORM_OVERHEAD),
    (frozenset({"POST"}), re.compile(r"^/review/upload_stdans/?$"), 32 * MB + _FORM_OVERHEAD),
    # 003 face login and face binding: one photo, base64 in JSON (face: face_max_image_bytes, 10 MB).
    (frozenset({"POST"}), re.compile(r"^/user/face_recognition(_login)?/?$"), 16 * MB),
    # 002: base64 images in JSON (face: face_max_body_bytes). 002 also sends its bodies with GET.
    (None, re.compile(r"^/api/v1/engine/recocomp/"), 64 * MB),
    # 004: a batch of images (detect: max_images_per_request x max_image_bytes).
    (frozenset({"POST"}), re.compile(r"^/api/detect/?$"), 64 * 20 * MB + _FORM_OVERHEAD),
    # Calls between services (never routed by the gateway): face enrolment carries photos.
    (None, re.compile(r"^/internal/"), 64 * MB),
]


def body_limit(method: str, path: str, multipart: bool) -> int:
    """The largest body, in bytes, that `method path` accepts; a body that is not multipart is read
    whole, and never beyond WHOLE_BODY_LIMIT. `multipart` has no default: a caller that forgot it would
    get an upload's limit for a body it reads whole."""
    method = method.upper()
    for methods, pattern, limit in _ROUTE_LIMITS:
        if (methods is None or method in methods) and pattern.search(path):
            return limit if multipart else min(limit, WHOLE_BODY_LIMIT)
    return DEFAULT_BODY_LIMIT
