"""Reads the detections stream with a consumer group and writes each record once.

A record is acknowledged only after the transaction that stored it committed, so a crash between
read and acknowledgement loses nothing: the record stays pending and is read again (our own
pending entries at start-up, a dead consumer's after `claim_idle_ms`). Its `record_id` is unique,
so storing it a second time changes nothing.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
from datetime import datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.stats.repository import StatsRepository
from shared.detections import DetectionRecord

log = logging.getLogger(__name__)


def _row(record: DetectionRecord) -> dict[str, object]:
    return {
        "record_id": record.record_id,
        "name": record.name[:512],
        "created_at": datetime.fromisoformat(record.created_at),
        "label": ",".join(record.labels)[:256],
        "num": record.num,
        "dice": record.dice,
        "processing_time": record.processing_time,
        "result_image": base64.b64decode(record.result_image),
    }


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

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _store(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        rows, ids = [], []
        for entry_id, fields in entries:
            ids.append(entry_id)
            try:
                rows.append(_row(DetectionRecord.from_fields(fields)))
            except (KeyError, ValueError) as exc:  # a malformed entry is logged and dropped, not retried forever
                log.error("dropping malformed detection record %s: %s", entry_id, exc)
        async with self.sessionmaker.begin() as session:
            await StatsRepository(session).insert_records(rows)
        if ids:
            await self.redis.xack(self.stream, self.group, *ids)

    async def _read(self, start_id: str, block: int | None) -> list[tuple[str, dict[str, str]]]:
        response = await self.redis.xreadgroup(
            self.group, self.name, {self.stream: start_id}, count=self.count, block=block
        )
        return [(entry_id, fields) for _, entries in response or [] for entry_id, fields in entries if fields]

    async def _claim_stale(self) -> list[tuple[str, dict[str, str]]]:
        _, entries, *_ = await self.redis.xautoclaim(
            self.stream, self.group, self.name, self.claim_idle_ms, start_id="0-0", count=self.count
        )
        return [(entry_id, fields) for entry_id, fields in entries if fields]

    async def run(self) -> None:
        await self.ensure_group()
        while True:  # our own pending entries first: what we read but never acknowledged
            pending = await self._read("0", None)
            if not pending:
                break
            await self._store(pending)
        while True:
            try:
                entries = await self._claim_stale() or await self._read(">", 1000)
                if entries:
                    await self._store(entries)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("detections stream unavailable (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1)
            except Exception:
                log.exception("storing detection records failed; retrying")
                await asyncio.sleep(1)
