"""Face enrolment of labelled images in face datasets, through an outbox.

An upload writes one `enrolment_outbox` row per labelled image of a face dataset, in the upload's own
transaction: the enrolment is recorded exactly when the image is, and never lost if the face service is
down. The drainer (shared/outbox.py: every replica drains, each row locked `FOR UPDATE SKIP LOCKED`
while it is sent, so replicas share the rows without sending one twice) sends the queued rows to the
face service's internal API:

    POST /internal/datasets/enroll
        {"collection": "dataset-<id>", "owner_id": <the dataset's owner>, "target_id": "<label name>",
         "image_key": "<sha256>", "image": "<base64 of the image>", "enrolment_id": <outbox id>}
    2xx            enrolled: the row is `done`
    400/409/413/422 the face service refuses this image (no face, quota of 5 per target ...): `rejected`,
                    with its answer in `last_error`; never retried
    anything else, or no answer: the row stays `queued` and is tried again later (exponential back-off);
                    with no answer at all, the round's other rows wait for the next round

`enrolment_id` lets the face service recognise a retry of a call whose answer was lost.
"""

from __future__ import annotations

import base64
from datetime import datetime

import anyio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.errors import ServiceUnavailable
from shared.http import ServiceClient
from shared.outbox import Delivery, OutboxDrainer, Outcome

from .models import Enrolment
from .repository import DatasetRepository
from .storage import ObjectNotFound, ObjectStore

ENROLL_PATH = "/internal/datasets/enroll"
_REFUSED = {400, 409, 413, 422}


# Enrolment has OutboxRow's columns, but mypy checks a type variable's bound against the Mapped[...]
# descriptors themselves, not the values they give an instance.
class EnrolmentDrainer(OutboxDrainer[Enrolment]):  # type: ignore[type-var]
    name = "face enrolments"

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        store: ObjectStore,
        face: ServiceClient,
        *,
        interval: float = 2.0,
        batch: int = 20,
        max_backoff: float = 300.0,
    ) -> None:
        super().__init__(sessionmaker, interval=interval, batch=batch, max_backoff=max_backoff)
        self.store = store
        self.face = face
        # Enrolment id -> its dataset's owner (the collection's), for the rows of the round in progress:
        # a drainer runs one round at a time.
        self._owners: dict[int, int] = {}

    async def kick_async(self) -> None:
        """The upload's after-commit hook: drain now rather than at the next interval."""
        self.poke()

    async def claim(self, session: AsyncSession, now: datetime, limit: int) -> list[Enrolment]:
        rows = await DatasetRepository(session).due_enrolments(now, limit)
        self._owners = {row.id: owner_id for row, owner_id in rows}
        return [row for row, _ in rows]

    def destination(self, row: Enrolment) -> str:
        return "face"

    async def send(self, row: Enrolment) -> Delivery:
        try:
            image = await anyio.to_thread.run_sync(self._read, row.object_key)
        except ObjectNotFound:
            return Delivery(Outcome.REFUSED, "image bytes are missing from the object store")
        body = {
            "collection": row.collection,
            "owner_id": self._owners[row.id],
            "target_id": row.target_id,
            "image_key": row.object_key,
            "image": base64.b64encode(image).decode(),
            "enrolment_id": row.id,
        }
        try:
            response = await self.face.request("POST", ENROLL_PATH, json=body)
        except ServiceUnavailable as exc:
            return Delivery(Outcome.UNREACHABLE, f"face service unavailable ({exc.details})")
        if 200 <= response.status_code < 300:
            return Delivery(Outcome.DONE)
        if response.status_code in _REFUSED:
            return Delivery(Outcome.REFUSED, f"{response.status_code}: {response.text[:400]}")
        return Delivery(Outcome.RETRY, f"face service answered {response.status_code}")

    def mark_done(self, row: Enrolment, now: datetime) -> None:
        row.status, row.sent_at = "done", now

    def mark_refused(self, row: Enrolment) -> None:
        row.status = "rejected"

    def describe(self, row: Enrolment) -> str:
        return f"enrolment {row.id} ({row.collection}, target {row.target_id!r})"

    def _read(self, key: str) -> bytes:
        with self.store.open(key) as fileobj:
            return fileobj.read()
