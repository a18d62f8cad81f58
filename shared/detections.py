"""The detection record: what detect publishes on a Redis stream for every image it processes,
and what stats stores. Both services need the stream's name and the record's fields, so they
live here, once."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from shared.redis import Keys

STREAM = "detections"
# Bounds Redis memory if stats is down for long: past this many unread records the oldest go.
STREAM_MAX_LENGTH = 100_000


def stream_key(keys: Keys) -> str:
    return keys.of(STREAM)


@dataclass(frozen=True)
class DetectionRecord:
    record_id: str  # unique per image processed; makes a redelivery harmless
    name: str
    created_at: str  # ISO 8601, UTC
    labels: list[str]
    num: int
    dice: float
    processing_time: float
    result_image: str  # base64 JPEG

    def to_fields(self) -> dict[str, str]:
        fields = {k: str(v) for k, v in asdict(self).items()}
        fields["labels"] = json.dumps(self.labels)
        return fields

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> DetectionRecord:
        return cls(
            record_id=fields["record_id"],
            name=fields["name"],
            created_at=fields["created_at"],
            labels=list(json.loads(fields["labels"])),
            num=int(fields["num"]),
            dice=float(fields["dice"]),
            processing_time=float(fields["processing_time"]),
            result_image=fields["result_image"],
        )
