"""Reads the detections stream with a consumer group and writes each record once.

Scheme with N replicas: one Redis consumer group (`stats`) shared by every replica, each replica a
consumer of its own (`<hostname>-<pid>`), so the replicas share the records rather than each storing
all of them. A record is acknowledged only after the transaction that stored it committed, so a crash
between read and acknowledgement loses nothing: the record stays pending, and is read again by the same
consumer when it restarts under the same name (a container restarted in place), or claimed by any live
replica once it has been pending for `claim_idle_ms` (XAUTOCLAIM, walking the whole pending list with its
cursor; a walk starts every half `claim_idle_ms`, so such a record waits at most 1.5 times that). A consumer that was merely slow, not dead, may then store a record its successor also stores:
`record_id` is unique, so the second insert changes nothing. Consumers that are gone (a pod replaced
under a new name) leave their names in the group: names idle for an hour with nothing pending are
removed now and then.

Bad records never block the good ones: a malformed entry is logged and dropped, and when PostgreSQL
refuses a batch because of one record's value, the batch is stored record by record and the refused
one dropped. The group is created again if it disappears (a Redis restarted without its data).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
import time
from datetime import datetime
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.stats.repository import RecordRow, StatsRepository
from shared.db import refused_input
from shared.detections import DetectionRecord

log = logging.getLogger(__name__)

Entry = tuple[str, dict[str, str]]
# An entry as a read returns it: a pending entry the stream no longer holds has no fields.
ReadEntry = tuple[str | None, dict[str, str] | None]
# XREADGROUP's reply as our client gets it (RESP2, decoded strings: shared/redis.py): [stream, entries]
# per stream. redis-py types the reply of every protocol and decoding at once.
ReadGroupReply = list[tuple[str, list[ReadEntry]]]

# A consumer name idle this long with nothing pending belongs to a replica that is gone.
FORGET_IDLE_MS = 3_600_000
FORGET_EVERY_SECONDS = 600


def _row(record: DetectionRecord) -> RecordRow:
    return RecordRow(
        record.record_id,
        record.name[:512],
        datetime.fromisoformat(record.created_at),
        ",".join(record.labels)[:256],
        record.num,
        record.dice,
        record.processing_time,
        base64.b64decode(record.result_image),
    )


class RecordConsumer:
    def __init__(
        self,
        redis: Redis,
        stream: str,
        group: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        count: int,
        claim_idle_ms: int,
    ) -> None:
        self.redis = redis
        self.stream = stream
        self.group = group
        self.sessionmaker = sessionmaker
        self.count = count
        self.claim_idle_ms = claim_idle_ms
        self.name = f"{socket.gethostname()}-{os.getpid()}"
        self._claim_cursor = "0-0"
        self._next_claim_walk = time.monotonic()
        self._forgotten_at = time.monotonic()

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _store(self, entries: list[Entry], gone: list[str]) -> None:
        """Stores `entries`, then acknowledges them and `gone` (ids whose entry was trimmed meanwhile)."""
        rows = []
        for entry_id, fields in entries:
            try:
                rows.append(_row(DetectionRecord.from_fields(fields)))
            except (KeyError, ValueError) as exc:  # a malformed entry is logged and dropped, not retried forever
                log.error("dropping malformed detection record %s: %s", entry_id, exc)
        try:
            await self._insert(rows)
        except DBAPIError as exc:
            if refused_input(exc) is None:
                raise  # an outage or a bug: nothing is acknowledged, the records are read again
            for row in rows:  # one record's value spoils the batch: find it, keep the others
                try:
                    await self._insert([row])
                except DBAPIError as one:
                    if refused_input(one) is None:
                        raise
                    log.error("dropping detection record %s: the database refused it (%s)", row.record_id, one.orig)
        if ids := [entry_id for entry_id, _ in entries] + gone:
            await self.redis.xack(self.stream, self.group, *ids)

    async def _insert(self, rows: list[RecordRow]) -> None:
        async with self.sessionmaker() as session:  # committed when it returns
            await StatsRepository(session).insert_records(rows)

    @staticmethod
    def _split(entries: list[ReadEntry]) -> tuple[list[Entry], list[str]]:
        """Entries with their fields, and the ids of pending entries the stream no longer holds (no fields)."""
        present = [(entry_id, fields) for entry_id, fields in entries if entry_id and fields]
        return present, [entry_id for entry_id, fields in entries if entry_id and not fields]

    async def _read(self, start_id: str, block: int | None) -> tuple[list[Entry], list[str]]:
        response = await self.redis.xreadgroup(
            self.group, self.name, {self.stream: start_id}, count=self.count, block=block
        )
        return self._split([entry for _, entries in cast(ReadGroupReply, response or []) for entry in entries])

    def _claim_due(self) -> bool:
        """Whether to claim now: during a walk of the pending list, and when the next walk is due. Not before
        every read: under a steady flow that was a third of the consumer's Redis calls, and a walk only
        finds entries idle for `claim_idle_ms`."""
        return self._claim_cursor != "0-0" or time.monotonic() >= self._next_claim_walk

    async def _claim_stale(self) -> list[Entry]:
        """Entries another consumer read and left unacknowledged for `claim_idle_ms`, now ours."""
        cursor, entries, *_ = await self.redis.xautoclaim(
            self.stream, self.group, self.name, self.claim_idle_ms, start_id=self._claim_cursor, count=self.count
        )
        self._claim_cursor = cursor  # "0-0" once the whole pending list was walked: from the start next time
        if cursor == "0-0":
            self._next_claim_walk = time.monotonic() + self.claim_idle_ms / 2000
        return self._split(entries)[0]  # XAUTOCLAIM drops trimmed entries from the pending list itself

    async def forget_dead_consumers(self, idle_ms: int = FORGET_IDLE_MS) -> list[str]:
        """Removes the group's consumers idle for `idle_ms` with nothing pending; returns their names."""
        forgotten = []
        for consumer in await self.redis.xinfo_consumers(self.stream, self.group):
            name = consumer["name"]
            if name != self.name and consumer["pending"] == 0 and consumer["idle"] >= idle_ms:
                # One that was only quiet comes back by itself with its next read.
                await self.redis.xgroup_delconsumer(self.stream, self.group, name)
                forgotten.append(name)
        return forgotten

    async def _own_pending(self) -> None:
        """What this consumer's name read before a restart and never acknowledged."""
        while True:
            entries, gone = await self._read("0", None)
            if not entries and not gone:
                return
            await self._store(entries, gone)

    async def run(self) -> None:
        recovered = False
        while True:
            try:
                if not recovered:
                    await self.ensure_group()
                    await self._own_pending()
                    recovered = True
                if self._claim_due() and (stale := await self._claim_stale()):
                    await self._store(stale, [])
                else:
                    entries, gone = await self._read(">", 1000)
                    if entries or gone:
                        await self._store(entries, gone)
                if time.monotonic() - self._forgotten_at > FORGET_EVERY_SECONDS:
                    self._forgotten_at = time.monotonic()
                    if forgotten := await self.forget_dead_consumers():
                        log.info("removed %d gone consumers from group %s", len(forgotten), self.group)
            except asyncio.CancelledError:
                raise
            except ResponseError as exc:
                if "NOGROUP" in str(exc):  # the stream or the group vanished: create them again
                    log.warning("consumer group %s is gone; creating it again", self.group)
                    recovered = False
                else:
                    log.warning("detections stream error (%s); retrying", exc)
                await asyncio.sleep(1)
            except (RedisError, OSError) as exc:
                log.warning("detections stream unavailable (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1)
            except Exception:
                log.exception("storing detection records failed; retrying")
                await asyncio.sleep(1)
