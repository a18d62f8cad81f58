"""What the tasks service asks of its peers: user profiles and escrow holds from auth, texts and Q&A
records from the dataset service. Each call is one small function, so that a peer growing a better
endpoint is a one-line change here.

Calls that move points after a commit (payouts, refunds), and the grow-value and credit changes, go
through the outbox (`services/tasks/outbox.py`), never straight from a request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

import httpx
from redis.asyncio import Redis

from services.tasks.errors import ScoreNotEnough
from shared.errors import LabelhiveError, ServiceUnavailable
from shared.http import ServiceClient
from shared.identity import Identity
from shared.redis import Keys

Profile = dict[str, Any]
BATCH = 10_000  # auth answers at most this many users a call (/internal/users, /internal/users/batch)


def escrow_id(task_id: int) -> str:
    return f"task:{task_id}"


def _data(response: httpx.Response, peer: str) -> Any:
    if response.status_code >= 500:
        raise ServiceUnavailable(f"{peer} service unavailable", details=f"status {response.status_code}")
    try:
        return response.json()["data"]
    except (ValueError, KeyError, TypeError):
        raise ServiceUnavailable(f"{peer} service gave an unreadable answer") from None


class AuthClient:
    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def user(self, user_id: int) -> Profile | None:
        response = await self.client.request("GET", f"/internal/users/{user_id}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ServiceUnavailable("auth service unavailable", details=f"status {response.status_code}")
        profile: Profile = _data(response, "auth")
        return profile

    async def users(self, user_ids: Iterable[int]) -> dict[int, Profile]:
        ids = sorted(set(user_ids))
        found: dict[int, Profile] = {}
        for start in range(0, len(ids), BATCH):
            response = await self.client.request(
                "POST", "/internal/users/batch", json={"user_ids": ids[start : start + BATCH]}
            )
            if response.status_code != 200:
                raise ServiceUnavailable("auth service unavailable", details=f"status {response.status_code}")
            for profile in _data(response, "auth"):
                found[int(profile["user_id"])] = profile
        return found

    async def annotators(self) -> list[Profile]:
        """Every `tag` user's profile, in id order, a page at a time."""
        annotators: list[Profile] = []
        after_id = 0
        while True:
            response = await self.client.request(
                "GET", "/internal/users", params={"role": "tag", "after_id": after_id, "limit": BATCH}
            )
            if response.status_code != 200:
                raise ServiceUnavailable("auth service unavailable", details=f"status {response.status_code}")
            page = _data(response, "auth")
            annotators.extend(page)
            if len(page) < BATCH:
                return annotators
            after_id = int(page[-1]["user_id"])

    async def own_score(self, identity: Identity) -> int:
        """The caller's points, read as the caller (the profile auth shows a user about themself)."""
        response = await self.client.request("GET", f"/user/userinfo/{identity.user_id}", identity=identity)
        if response.status_code != 200:
            raise ServiceUnavailable("auth service unavailable", details=f"status {response.status_code}")
        return int(_data(response, "auth")["score"])

    async def hold(self, task_id: int, publisher_id: int, amount: int, key: str) -> None:
        """Makes the task's escrow hold `amount` of the publisher's points (auth moves only the difference);
        a replay of `key` moves nothing."""
        response = await self.client.request(
            "POST",
            "/internal/escrow/hold",
            json={"escrow_id": escrow_id(task_id), "user_id": publisher_id, "amount": amount, "idempotency_key": key},
        )
        if response.status_code == 200:
            return
        body = _body(response)
        if response.status_code == 400 and body.get("code") == 5:
            raise ScoreNotEnough()
        if response.status_code >= 500 or response.status_code in (401, 403):
            raise ServiceUnavailable("auth service unavailable", details=f"status {response.status_code}")
        raise LabelhiveError(
            f"escrow hold refused: {body.get('message', response.status_code)}",
            status_code=409 if response.status_code == 409 else 400,
        )


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class DatasetClient:
    """Texts of 003's upload_data (cached in Redis: they never change) and 001's Q&A records."""

    TEXT_TTL = 3600

    def __init__(self, client: ServiceClient, redis: Redis, keys: Keys, concurrency: int) -> None:
        self.client = client
        self.redis = redis
        self.keys = keys
        self.concurrency = concurrency

    async def _text(self, text_id: str) -> dict[str, Any] | None:
        key = self.keys.of("tasks", "text", text_id)
        cached = await self.redis.get(key)
        if cached is not None:
            cached_text: dict[str, Any] = json.loads(cached)
            return cached_text
        response = await self.client.request("GET", f"/internal/texts/{text_id}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ServiceUnavailable("dataset service unavailable", details=f"status {response.status_code}")
        text: dict[str, Any] = _data(response, "dataset")
        await self.redis.set(key, json.dumps(text), ex=self.TEXT_TTL)
        return text

    async def texts(self, text_ids: Iterable[str]) -> dict[str, dict[str, Any] | None]:
        """text id -> {"text", "filename", "dataset_id", ...} (None when the dataset has no such text)."""
        ids = list(dict.fromkeys(text_ids))
        slots = asyncio.Semaphore(self.concurrency)

        async def one(text_id: str) -> tuple[str, dict[str, Any] | None]:
            async with slots:
                return text_id, await self._text(text_id)

        return dict(await asyncio.gather(*(one(i) for i in ids)))

    async def image(self, url: str) -> bytes | None:
        """An image of the image bed (`/picbed/<name>`), read from the dataset service that serves it."""
        response = await self.client.request("GET", url)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ServiceUnavailable("dataset service unavailable", details=f"status {response.status_code}")
        return response.content

    async def qa_dataset(self, dataset_id: int) -> dict[str, Any] | None:
        response = await self.client.request("GET", f"/internal/qa/{dataset_id}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ServiceUnavailable("dataset service unavailable", details=f"status {response.status_code}")
        qa_dataset: dict[str, Any] = _data(response, "dataset")
        return qa_dataset

    async def qa_records(
        self, dataset_id: int, area: str, after_id: int = 0, until_id: int | None = None, page: int = 5000
    ) -> list[dict[str, Any]]:
        """The records of one area in id order, from after `after_id` up to `until_id` included."""
        records: list[dict[str, Any]] = []
        while True:
            response = await self.client.request(
                "GET", f"/internal/qa/{dataset_id}/records", params={"area": area, "after_id": after_id, "limit": page}
            )
            if response.status_code == 404:
                return records
            if response.status_code != 200:
                raise ServiceUnavailable("dataset service unavailable", details=f"status {response.status_code}")
            batch = _data(response, "dataset")
            for record in batch:
                if until_id is not None and int(record["data_id"]) > until_id:
                    return records
                records.append(record)
            if len(batch) < page:
                return records
            after_id = int(batch[-1]["data_id"])

    async def label_record(self, record_id: int, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Writes an expert's labels back (an idempotent PUT); returns the status and the answer body."""
        response = await self.client.request("PUT", f"/internal/qa/records/{record_id}", json=body)
        if response.status_code >= 500:
            raise ServiceUnavailable("dataset service unavailable", details=f"status {response.status_code}")
        return response.status_code, _body(response)
