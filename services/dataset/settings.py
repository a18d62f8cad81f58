"""The dataset service's knobs (environment variables `LABELHIVE_<FIELD>`, e.g. `LABELHIVE_MAX_IMAGE_BYTES`).

`LABELHIVE_OBJECT_STORE=s3://bucket/prefix` keeps files in S3-compatible object storage instead of the data
dir; the client reads the usual `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_REGION`.

`LABELHIVE_UPLOAD_THROTTLE` (`upload_throttle`, shared with every service) switches 003's per-membership
upload wait on or off; the waits themselves are the document's and live in `uploads.THROTTLE_SECONDS_PER_MB`.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import field_validator

from shared.settings import PlatformSettings

MB = 1024 * 1024
# S3 bucket names: 3-63 lower-case letters, digits, dots and hyphens; the prefix is any path below it.
_S3_URL_RE = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?")


class DatasetSettings(PlatformSettings):
    # Where files live: empty for the content-addressed store under the data dir (one replica, or a shared
    # volume), `s3://bucket/prefix` for S3-compatible object storage that every replica reads alike.
    object_store: str = ""
    # One image (000 uploads, the image bed, images inside 003 archives).
    max_image_bytes: int = 20 * MB
    # Pixel cap checked from the header before any pixel is decoded (decompression bombs).
    max_image_pixels: int = 50_000_000
    # Pascal VOC XML, label files and mapping tables.
    max_xml_bytes: int = 1 * MB
    max_label_file_bytes: int = 1 * MB
    max_table_bytes: int = 8 * MB
    # A whole 000 upload request, and how many files it may carry.
    max_upload_request_bytes: int = 1024 * MB
    max_files_per_request: int = 2000
    # 003's zip archive: its size, entry count, expanded size, and one text file inside it.
    max_archive_bytes: int = 1024 * MB
    max_archive_entries: int = 10_000
    max_archive_expanded_bytes: int = 2048 * MB
    max_archive_member_bytes: int = 64 * MB
    max_text_bytes: int = 1 * MB
    # One media file (003's media bed).
    max_media_bytes: int = 4096 * MB
    # 001's Q&A upload (a JSON body).
    max_qa_body_bytes: int = 64 * MB
    # Images decoded at once in this process (each decode holds a whole bitmap in memory).
    decode_concurrency: int = 2
    # Face enrolment outbox: how often it is drained, how much per round, the longest back-off.
    enrolment_interval_seconds: float = 2.0
    enrolment_batch: int = 20
    enrolment_max_backoff_seconds: float = 300.0
    # Stored bytes nothing references (a process died between storing and committing) are removed at
    # start-up once older than this; 0 turns the sweep off.
    orphan_sweep_age_seconds: float = 3600.0

    @field_validator("object_store")
    @classmethod
    def _s3_url(cls, value: str) -> str:
        value = value.strip()
        if value and not _S3_URL_RE.fullmatch(value):
            raise ValueError("LABELHIVE_OBJECT_STORE must be empty (files under the data dir) or s3://bucket/prefix")
        return value.rstrip("/")

    @property
    def objects_dir(self) -> Path:
        return self.data_dir / "objects"

    @property
    def scratch_dir(self) -> Path:
        """Temp files of exports (same disk as the objects, never /tmp on a small tmpfs)."""
        return self.data_dir / "dataset-tmp"
