"""Face enrolment of labelled images in face datasets, through an outbox.

An upload writes one `enrolment_outbox` row per labelled image of a face dataset, in the upload's own
transaction: the enrolment is recorded exactly when the image is, and never lost if the face service is
down. One drainer per deployment (a Redis lock elects it among the replicas) sends the queued rows to the
face service's internal API:

    POST /internal/datasets/enroll
        {"collection": "dataset-<id>", "owner_id": <the dataset's owner>, "target_id": "<label name>",
         "image_key": "<sha256>", "image": "<base64 of the image>", "enrolment_id": <outbox id>}
    2xx            enrolled: the row is `done`
    400/409/413/422 the face service refuses this image (no face, quota of 5 per target ...): `rejected`,
                    with its answer in `last_error`; never retried
    anything else, or no answer: the row stays `queued` and is tried again later (exponential back-off)

`enrolment_id` lets the face service recognise a retry of a call whose answer was lost.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from datetime import UTC, datetime, timedelta

import anyio
from redis.asyncio import Redis
from redis.exceptions import LockError, RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.errors import ServiceUnavailable
from shared.http import ServiceClient
from shared.redis import Keys

from .models import Enrolment
from .repository import DatasetRepository
from .storage import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)

ENROLL_PATH = "/internal/datasets/enroll"
_REFUSED = {400, 409, 413, 422}
LOCK_TTL_SECONDS = 30


class EnrolmentDrainer:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        store: ObjectStore,
        face: ServiceClient,
        redis: Redis,
        keys: Keys,
        *,
        interval: float = 2.0,
        batch: int = 20,
        max_backoff: float = 300.0,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.store = store
        self.face = face
        self.redis = redis
        self.lock_name = keys.of("dataset", "enrolment-drainer")
        self.interval = interval
        self.batch = batch
        self.max_backoff = max_backoff
        self._lock = None
        self._wake = asyncio.Event()
        self.face_reachable = True

    def kick(self) -> None:
        """Drain now rather than at the next interval (after an upload queued enrolments)."""
        self._wake.set()

    async def kick_async(self) -> None:
        self.kick()

    async def run(self) -> None:
        try:
            while True:
                try:
                    if await self._lead():
                        while await self.drain_once() >= self.batch and self.face_reachable:
                            pass
                except Exception:  # the loop outlives any one failure (database restart, Redis blip)
                    log.exception("enrolment drain failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval)
                self._wake.clear()
        finally:
            with anyio.CancelScope(shield=True):
                await self._release()

    async def _lead(self) -> bool:
        if self._lock is not None:
            try:
                await self._lock.reacquire()
                return True
            except (LockError, RedisError):
                self._lock = None
        lock = self.redis.lock(self.lock_name, timeout=LOCK_TTL_SECONDS, blocking=False, thread_local=False)
        if await lock.acquire():
            self._lock = lock
            return True
        return False

    async def _release(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(LockError, RedisError):
                await self._lock.release()
            self._lock = None

    async def drain_once(self, now: datetime | None = None) -> int:
        """Sends the due rows (at most one batch); returns how many were due."""
        now = now or datetime.now(UTC)
        async with self.sessionmaker.begin() as session:
            rows = await DatasetRepository(session).due_enrolments(now, self.batch)
            self.face_reachable = True
            for position, (row, owner_id) in enumerate(rows):
                if not await self._send(row, owner_id):
                    self.face_reachable = False
                    # The face service is not there: the rest of the batch would fail the same way.
                    for later, _ in rows[position + 1 :]:
                        self._retry(later, "not attempted: face service unavailable", count=False)
                    break
        return len(rows)

    async def _send(self, row: Enrolment, owner_id: int) -> bool:
        """One enrolment; False when the face service could not be reached."""
        try:
            image = await anyio.to_thread.run_sync(self._read, row.object_key)
        except ObjectNotFound:
            row.status, row.last_error = "rejected", "image bytes are missing from the object store"
            return True
        body = {
            "collection": row.collection,
            "owner_id": owner_id,
            "target_id": row.target_id,
            "image_key": row.object_key,
            "image": base64.b64encode(image).decode(),
            "enrolment_id": row.id,
        }
        try:
            response = await self.face.request("POST", ENROLL_PATH, json=body)
        except ServiceUnavailable as exc:
            self._retry(row, f"face service unavailable ({exc.details})")
            return False
        row.attempts += 1
        if 200 <= response.status_code < 300:
            row.status, row.sent_at, row.last_error = "done", datetime.now(UTC), None
        elif response.status_code in _REFUSED:
            row.status, row.last_error = "rejected", f"{response.status_code}: {response.text[:400]}"
        else:
            self._retry(row, f"face service answered {response.status_code}", count=False)
        return True

    def _read(self, key: str) -> bytes:
        with self.store.open(key) as fileobj:
            return fileobj.read()

    def _retry(self, row: Enrolment, reason: str, count: bool = True) -> None:
        if count:
            row.attempts += 1
        delay = min(self.max_backoff, self.interval * 2 ** min(row.attempts, 20))
        row.next_attempt_at = datetime.now(UTC) + timedelta(seconds=delay)
        row.last_error = reason[:500]
