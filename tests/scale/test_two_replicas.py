"""Two replicas of every service (issue 13): the main flows run through the gateway while one replica of
each service is stopped and started again. No client sees an error, and the points ledger, the stats
records and the face collections end exactly as the same flow leaves them on the run's one-replica
platform.

The flow is deterministic: 003 sign-ups (register with an email code, login, userinfo), a dataset
upload, a task published with points that two annotators accept, label and get approved and paid
for, detections whose records reach the stats service, and a face collection filled and searched.
Just before it first needs a service, it has one of that service's replicas stopped and started
again in the background (the first replica of some services, the second of others), so its own
calls, and a reader's calls to every service, meet the replica going away, refusing connections and
coming back. Its end state is read back from PostgreSQL, and from each face replica's memory, with
the flow's labels in place of ids and names, so that the two platforms' runs compare equal.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest_asyncio
from PIL import Image

from shared.identity import CALLER_HEADER, sign_caller
from shared.launcher import Platform
from shared.settings import SERVICES
from tests.conftest import Mailbox, Servers, gateway_client, platform_env, platform_log_dir, unique
from tests.fixtures.face_photos import face_photo_dir
from tests.fixtures.steel import steel_photo
from tests.helpers import admin_client, eventually, signup
from tests.tasks_api.conftest import bank_card, task_body, upload_texts
from tools.throwaway_platform import throwaway_backing, throwaway_platform

FACE = "/api/v1/engine/recocomp"
REWARD, QUESTIONS = 5, 3
ANNOTATORS = {"annotator_1": ["cat", "dog", "bird"], "annotator_2": ["cat", "cat", "bird"]}
DETECTIONS = 3


@dataclass
class Deployment:
    platform: Platform
    db: asyncpg.Connection


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def two_replicas(servers: Servers, mailbox: Mailbox) -> AsyncIterator[Deployment]:
    """A platform of its own (database, Redis namespace) with two replicas of every service."""
    async with throwaway_backing(servers.admin_url, servers.redis_url, "labelhive_scale") as backing:
        env = {
            **platform_env(backing, mailbox),
            # Records a stopped stats replica had read but not yet acknowledged go to the other replica
            # once they have been idle this long (30 s by default: the flow would wait that long).
            "LABELHIVE_CLAIM_IDLE_MS": "3000",
        }
        async with throwaway_platform(backing, extra_env=env, log_dir=platform_log_dir(backing), replicas=2) as running:
            db = await asyncpg.connect(backing.database_url)
            try:
                yield Deployment(running, db)
            finally:
                await db.close()


# Clients that record every failure ---------------------------------------------------------------


@dataclass
class Failures:
    """Every answer of 500 or more any client of a run got. (A request that gets no answer at all raises
    in the flow, and fails the test there.)"""

    seen: list[str] = field(default_factory=list)
    answered: int = 0

    async def _on_answer(self, response: httpx.Response) -> None:
        self.answered += 1
        if response.status_code >= 500:
            await response.aread()
            request = response.request
            self.seen.append(f"{request.method} {request.url.path}: {response.status_code} {response.text[:200]}")

    def watch(self, client: httpx.AsyncClient) -> httpx.AsyncClient:
        client.event_hooks["response"].append(self._on_answer)
        return client

    def client(self, platform: Platform, **kwargs: Any) -> httpx.AsyncClient:
        return self.watch(gateway_client(platform, **kwargs))


# The flow --------------------------------------------------------------------------------------


@dataclass
class FlowIds:
    """What the flow made, by the labels its end state uses."""

    users: dict[str, int] = field(default_factory=dict)
    task_id: int = 0
    detections: str = ""  # the prefix of the detected images' names
    collection: str = ""


def _face_photos() -> dict[str, str]:
    directory = face_photo_dir()
    names = ("person_a_1.jpg", "person_a_2.jpg", "person_b_1.jpg", "person_b_2.jpg")
    return {name: base64.b64encode((directory / name).read_bytes()).decode() for name in names}


async def _ok(request: Awaitable[httpx.Response], code: str = "code") -> dict[str, Any]:
    response = await request
    assert response.status_code == 200, f"{response.request.url.path}: {response.status_code} {response.text[:300]}"
    body: dict[str, Any] = response.json()
    assert body[code] == 0, f"{response.request.url.path}: {response.text[:300]}"
    return body


def no_restart(service: str) -> None:
    """The one-replica platform's: nothing is restarted under the flow."""


async def main_flow(
    platform: Platform, mailbox: Mailbox, failures: Failures, restart: Callable[[str], None] = no_restart
) -> tuple[FlowIds, dict[str, Any]]:
    """Runs the flow through the gateway, one step after the other, calling `restart(service)` just before
    it first needs a service; returns what it made and the answers it saw that must not depend on the
    deployment."""
    ids, seen = FlowIds(), {}
    admin = failures.watch(await admin_client(platform))
    publisher, *annotators = people = [failures.client(platform) for _ in range(1 + len(ANNOTATORS))]
    try:
        # 003: register with an email code, login (signup does both), userinfo.
        restart("auth")
        restart("console")  # the reader's
        for label, client in zip(("publisher", *ANNOTATORS), people, strict=True):
            account = await signup(client, mailbox, "demand" if label == "publisher" else "tag")
            ids.users[label] = account.user_id
            info = (await _ok(client.get(f"/user/userinfo/{account.user_id}")))["data"]
            assert (info["user_id"], info["user_name"], info["score"]) == (account.user_id, account.user_name, 0)
        await _ok(admin.post(f"/user/check_user/{ids.users['publisher']}"))
        await _ok(publisher.post("/user/modifybankaccount", json={"bank_account": bank_card()}))
        await _ok(publisher.post("/user/recharge", json={"amount": 10}))  # 100 points

        # A dataset upload, and a task with points published on it: accepted, labelled, approved, paid.
        restart("dataset")
        files = await upload_texts(publisher, ["a cat", "a dog", "a bird"])
        restart("tasks")
        body = task_body(files, reward_per_q=REWARD, distribute_user_num=len(ANNOTATORS))
        ids.task_id = task_id = (await _ok(publisher.post("/task/", json=body)))["data"]["task_id"]
        await _ok(admin.post(f"/task/check_task/{task_id}", json={"result": "accept"}))
        await _ok(publisher.post(f"/task/distribute/{task_id}"))
        for annotator, answers in zip(annotators, ANNOTATORS.values(), strict=True):
            await _ok(annotator.post(f"/task/accept/{task_id}"))
            for q_id, answer in enumerate(answers, start=1):
                await _ok(annotator.post(f"/task/upload_res/{task_id}/{q_id}", json={"result": answer}))
        for label in ANNOTATORS:
            paid = await _ok(publisher.post(f"/review/accept/{task_id}/{ids.users[label]}"))
            assert paid["data"]["paid"] == REWARD * QUESTIONS, paid
        view = (await _ok(publisher.get(f"/task/{task_id}")))["data"]
        seen["task"] = {k: view[k] for k in ("q_num", "check_result", "is_distributed")}

        # Detections, whose records the stats service stores.
        restart("detect")
        restart("stats")
        ids.detections = prefix = unique("scale") + "-"
        photos = [("images", (f"{prefix}{i}.png", steel_photo(40 + i), "image/png")) for i in range(DETECTIONS)]
        response = await publisher.post("/api/detect", files=photos)
        assert response.status_code == 200, response.text[:300]
        seen["detections"] = [(d["name"].removeprefix(prefix), d["defect_count"], d["labels"]) for d in response.json()]

        # A face collection (002, with an API key): created, filled, searched.
        restart("face")
        key = (await _ok(admin.post("/user/api_keys", json={"name": unique("scale-")})))["data"]["key"]
        async with failures.client(platform, headers={"X-API-Key": key}) as face:
            face.timeout = httpx.Timeout(120)  # a CPU embeds a few photos in seconds
            photo = _face_photos()
            ids.collection = collection = unique("scale")
            await _ok(face.post(f"{FACE}/create/collection", json={"collection_name": collection}), "err_code")
            insert = {
                "collection_name": collection,
                "target_id": ["a", "b"],
                "face_image": [photo["person_a_1.jpg"], photo["person_b_1.jpg"]],
            }
            assert (await _ok(face.post(f"{FACE}/face/insert", json=insert), "err_code"))["success_num"] == 2
            searches = []
            for name in ("person_a_2.jpg", "person_b_2.jpg"):
                search = {"collection_name": collection, "face_image": photo[name], "top_k": 2}
                found = await _ok(face.post(f"{FACE}/face/search", json=search), "err_code")
                searches.append([(m["result"], round(m["score"], 4)) for m in found["status"]])
            assert [s[0][0] for s in searches] == ["a", "b"], searches
            seen["face_searches"] = searches

        async def recorded() -> int | None:
            response = await publisher.get("/api/data/search", params={"name": prefix, "limit": 100})
            assert response.status_code == 200, response.text[:300]
            total: int = response.json()["total"]
            return total if total >= DETECTIONS else None

        seen["records_found"] = await eventually(recorded, timeout=30, interval=0.25, what="the detection records")
        return ids, seen
    finally:
        for client in (*people, admin):
            await client.aclose()


# The end state ---------------------------------------------------------------------------------


async def _outbox_settled(db: asyncpg.Connection, ids: FlowIds) -> bool:
    groups = [f"task:{ids.task_id}", *(f"user:{user_id}" for user_id in ids.users.values())]
    pending = await db.fetchval(
        "SELECT count(*) FROM tasks.outbox WHERE (grp = ANY($1::text[]) OR task_id = $2) AND status = 'pending'",
        groups,
        ids.task_id,
    )
    return pending == 0


async def _face_indexes(platform: Platform, collection_id: int) -> list[dict[str, Any]]:
    """The collection's index as each face replica holds it in memory."""
    states = []
    async with httpx.AsyncClient(timeout=10) as client:
        for _, port in platform.replicas("face"):
            response = await client.get(
                f"http://127.0.0.1:{port}/internal/face/indexes",
                headers={CALLER_HEADER: sign_caller("test", platform.secret)},
            )
            assert response.status_code == 200, response.text
            states.append(response.json()["collections"].get(str(collection_id)))
    return states


async def end_state(deployment: Deployment, ids: FlowIds) -> dict[str, Any]:
    """The points ledger, the stats records and the face collection the flow left, with labels for ids."""
    db = deployment.db
    await eventually(lambda: _outbox_settled(db, ids), timeout=30, what="the flow's outbox ops sent")
    accounts = {f"user:{user_id}": label for label, user_id in ids.users.items()}
    accounts[f"escrow:task:{ids.task_id}"] = "escrow"

    def account(name: str) -> str:
        return accounts.get(name, name if name.startswith("external:") else "another account")

    entries = await db.fetch(
        "SELECT kind, source, target, amount FROM auth.ledger_entries"
        " WHERE source = ANY($1::text[]) OR target = ANY($1::text[]) ORDER BY id",
        list(accounts),
    )
    users = await db.fetch(
        "SELECT id, score, tag_score, grow_value, credit_score FROM auth.users WHERE id = ANY($1::int[])",
        list(ids.users.values()),
    )
    label_of = {user_id: label for label, user_id in ids.users.items()}
    escrow = await db.fetchval("SELECT balance FROM auth.escrows WHERE id = $1", f"task:{ids.task_id}")
    records = await db.fetch(
        "SELECT name, label, num FROM stats.records WHERE name LIKE $1 || '%' ORDER BY name", ids.detections
    )
    collection = await db.fetchrow(
        "SELECT id, version, dim FROM face.collections WHERE kind = 'public' AND name = $1", ids.collection
    )
    features = await db.fetch(
        "SELECT target_id, count(*) AS n FROM face.features WHERE collection_id = $1 GROUP BY target_id ORDER BY 1",
        collection["id"],
    )

    async def indexes_caught_up() -> list[dict[str, Any]] | None:
        states = await _face_indexes(deployment.platform, collection["id"])
        return states if all(s is not None and s["version"] == collection["version"] for s in states) else None

    indexes = await eventually(indexes_caught_up, timeout=15, what="every face replica at the collection's version")
    return {
        "ledger": [(e["kind"], account(e["source"]), account(e["target"]), e["amount"]) for e in entries],
        "balances": sorted(
            (label_of[u["id"]], *(u[k] for k in ("score", "tag_score", "grow_value", "credit_score"))) for u in users
        ),  # fmt: skip
        "escrow": escrow,
        "stats_records": [(r["name"].removeprefix(ids.detections), r["label"], r["num"]) for r in records],
        "face_collection": (collection["version"], collection["dim"], [(f["target_id"], f["n"]) for f in features]),
        # Every replica's in-memory index alike (the one-replica platform has one).
        "face_indexes": sorted({(s["version"], s["size"], s["dim"]) for s in indexes}),
    }


# Replicas stopped and started while clients call ------------------------------------------------------------


@dataclass
class Restarts:
    """Stops one replica of a service and starts it again, in the background: the caller goes on at
    once. Services take the first and the second replica in turn."""

    platform: Platform
    running: list[asyncio.Task[None]] = field(default_factory=list)
    done: list[str] = field(default_factory=list)

    def __call__(self, service: str) -> None:
        process, port = self.platform.replicas(service)[len(self.running) % 2]
        self.running.append(asyncio.create_task(self._restart(process, port)))

    async def _restart(self, process: str, port: int) -> None:
        await asyncio.to_thread(self.platform.stop_service, process)
        self.platform.start_replica(process)
        await self.platform.wait_ready(f"http://127.0.0.1:{port}/readyz", process)
        self.done.append(process)

    async def finished(self) -> None:
        await asyncio.gather(*self.running)


def _small_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 90, 90)).save(out, "PNG")
    return out.getvalue()


async def keep_calling(platform: Platform, failures: Failures, stop: asyncio.Event) -> int:
    """Reads of every service (and a detection, which only writes stats records of its own) in a loop
    until `stop`: none of them may fail while replicas come and go. Returns how many rounds it made."""
    admin = failures.watch(await admin_client(platform))
    key = (await _ok(admin.post("/user/api_keys", json={"name": unique("reader-")})))["data"]["key"]
    anonymous = failures.client(platform)
    face = failures.client(platform, headers={"X-API-Key": key})
    plate = _small_png()
    calls = [
        lambda: anonymous.get("/advertise/get_ad"),
        lambda: admin.get("/user/get-current"),
        lambda: admin.get("/dataset/list"),
        lambda: admin.get("/task/get_all_tasks"),
        lambda: face.get(f"{FACE}/version"),
        lambda: face.post("/api/detect", files=[("images", ("reader.png", plate, "image/png"))]),
        lambda: admin.get("/api/data/getRecent", params={"limit": 1}),
        lambda: anonymous.get("/console/"),
    ]
    rounds = 0
    try:
        while not stop.is_set():
            for call in calls:
                response = await call()
                assert response.status_code < 400, f"{response.request.url.path}: {response.text[:300]}"
            rounds += 1
            await asyncio.sleep(0.2)
    finally:
        for client in (admin, anonymous, face):
            await client.aclose()
    return rounds


async def test_two_replicas_of_every_service_lose_nothing_while_replicas_restart(
    platform: Platform, db: asyncpg.Connection, mailbox: Mailbox, two_replicas: Deployment
):
    one = Failures()
    ids, seen = await main_flow(platform, mailbox, one)
    expected = {"seen": seen, **await end_state(Deployment(platform, db), ids)}
    assert one.seen == [], one.seen

    failures = Failures()
    restarts = Restarts(two_replicas.platform)
    stop = asyncio.Event()
    reader = asyncio.create_task(keep_calling(two_replicas.platform, failures, stop))
    started = time.monotonic()
    try:
        ids, seen = await main_flow(two_replicas.platform, mailbox, failures, restarts)
        flow_seconds = time.monotonic() - started
    finally:
        await restarts.finished()
        stop.set()
        rounds = await reader
    actual = {"seen": seen, **await end_state(two_replicas, ids)}

    assert failures.seen == [], failures.seen
    assert actual == expected
    assert sorted(p.partition("-")[0] for p in restarts.done) == sorted(SERVICES)
    assert rounds > 0
    print(
        f"flow {flow_seconds:.1f}s, restarts done after {time.monotonic() - started:.1f}s: {restarts.done}; "
        f"{failures.answered} answers, {rounds} reader rounds"
    )
