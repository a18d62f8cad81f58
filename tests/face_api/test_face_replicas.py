"""Indexes across processes: a second replica on the same PostgreSQL and Redis follows every change, a
restart rebuilds from PostgreSQL, and missing model files are a clear 503."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from shared.identity import CALLER_HEADER, IDENTITY_HEADER, Identity, sign_caller, sign_identity
from shared.launcher import ROOT, free_port
from tests.conftest import gateway_client
from tests.face_api.conftest import PREFIX, call, new_collection, ok, search
from tests.helpers import eventually


@pytest_asyncio.fixture(loop_scope="session")
async def replica(platform) -> AsyncIterator[str]:
    """A second face service process (not behind the gateway) sharing the platform's database and Redis."""
    port = free_port()
    log = None
    if platform.log_dir is not None:
        log = open(platform.log_dir / "face-replica.log", "ab")  # noqa: SIM115 - closed below
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "services.face.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--timeout-graceful-shutdown",
        "5",
    ]
    # No periodic version check during the test (what it sees must have come through Redis), and the
    # approximate index (the inverted file) from the first vector on, while the gateway's replica stays exact.
    env = {
        **platform.env(),
        "LABELHIVE_FACE_SYNC_INTERVAL_SECONDS": "3600",
        "LABELHIVE_FACE_APPROXIMATE_THRESHOLD": "0",
    }
    platform.processes["face-replica"] = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT if log else None
    )
    try:
        url = f"http://127.0.0.1:{port}"
        await platform.wait_ready(f"{url}/readyz", "face-replica")
        yield url
    finally:
        platform.stop_service("face-replica")
        if log is not None:
            log.close()


async def _indexes(url: str, secret: str) -> dict:
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/internal/face/indexes", headers={CALLER_HEADER: sign_caller("test", secret)})
        assert response.status_code == 200, response.text
        return response.json()


async def _collection_id(db, name: str) -> str:
    return str(await db.fetchval("SELECT id FROM face.collections WHERE kind = 'public' AND name = $1", name))


async def test_a_second_replica_follows_every_change(platform, replica, face, photos, db):
    headers = {IDENTITY_HEADER: sign_identity(Identity(1, "replica-test", "admin"), platform.secret)}
    async with httpx.AsyncClient(base_url=replica + PREFIX, headers=headers, timeout=120) as other:
        name = await new_collection(face, "replicated")
        collection_id = await _collection_id(db, name)

        async def replica_at(version: int) -> dict:
            async def reached() -> dict | None:
                state = await _indexes(replica, platform.secret)
                return state if state["collections"].get(collection_id, {}).get("version", -1) >= version else None

            return await eventually(reached, interval=0.05, what=f"the replica at version {version}")

        seen = await replica_at(0)  # the creation reached it through Redis
        assert seen["subscribed"] is True
        await ok(
            face,
            "/face/insert",
            {
                "collection_name": name,
                "target_id": ["macron", "ardern"],
                "face_image": [photos["person_a_1.jpg"], photos["person_b_1.jpg"]],
            },
        )
        after = await replica_at(1)
        # Applied from the published change, in place: no reload from PostgreSQL was needed.
        assert after["collections"][collection_id]["size"] == 2
        assert after["applied"] > seen["applied"] and after["reloads"] == seen["reloads"]

        body = {"collection_name": name, "face_image": photos["person_a_2.jpg"], "top_k": 2}
        r = await other.post("/face/search", json=body)
        assert r.json()["status"][0]["result"] == "macron", r.text

        # Deleted through the replica: gone from the gateway's replica at once.
        r = await other.post("/delete/id", json={"collection_name": name, "target_id": "macron"})
        assert r.json() == {"err_code": 0, "status": "Delete target_id successfully!"}
        assert "macron" not in [x["result"] for x in await search(face, name, photos["person_a_2.jpg"], 5)]

        # Updated through the gateway: the replica answers with the new face at once.
        await ok(
            face,
            "/face/update",
            {"collection_name": name, "target_id": ["ardern"], "face_image": [photos["impostor_1.jpg"]]},
        )
        r = await other.post("/face/search", json={**body, "face_image": photos["impostor_1.jpg"], "top_k": 1})
        top = r.json()["status"][0]
        assert top["result"] == "ardern" and top["score"] > 0.5
        r = await other.post("/face/search", json={**body, "face_image": photos["person_b_2.jpg"], "top_k": 1})
        assert r.json()["status"][0]["score"] < 0.5  # her old face is no longer there

        # Both replicas hold the same vectors, one exactly, one in the inverted file.
        ours = (await _indexes(platform.service_url("face"), platform.secret))["collections"][collection_id]
        theirs = (await _indexes(replica, platform.secret))["collections"][collection_id]
        assert (ours["kind"], theirs["kind"]) == ("flat", "ivf")
        assert ours["version"] == theirs["version"] and ours["size"] == theirs["size"] == 1

        # A dropped collection goes from both.
        r = await other.post("/delete/collection", json={"collection_name": name})
        assert r.json()["err_code"] == 0
        await refusal(face, name)

        async def dropped() -> bool:
            return collection_id not in (await _indexes(platform.service_url("face"), platform.secret))["collections"]

        await eventually(dropped, interval=0.05, what="the dropped collection gone from the gateway's replica")


async def refusal(face, name: str) -> None:
    r = await call(face, "/collection/status", {"collection_name": [name]})
    assert r.json()["err_code"] == 1005


async def test_restart_rebuilds_and_missing_models_are_a_clear_503(platform, face, photos, login_photos, tmp_path):
    name = await new_collection(face, "durable")
    await ok(
        face,
        "/face/insert",
        {"collection_name": name, "target_id": ["macron"], "face_image": [photos["person_a_1.jpg"]]},
    )
    url = f"{platform.service_url('face')}/readyz"
    platform.stop_service("face")
    try:
        async with gateway_client(platform) as anonymous:
            r = await anonymous.post("/user/face_recognition_login", json={"image": login_photos["person_a_1.jpg"]})
            assert r.status_code == 503 and r.json()["code"] == 1002
            r = await anonymous.post("/user/face_recognition_login", json={})
            assert r.status_code == 400 and r.json()["code"] == 1005
        r = await call(face, "/version", method="GET")
        assert r.status_code == 503 and r.json()["err_code"] == 503

        platform.extra_env["LABELHIVE_MODEL_DIR"] = str(tmp_path)  # empty
        platform.start_service("face")
        await platform.wait_ready(url, "face")
        async with httpx.AsyncClient() as direct:
            assert (await direct.get(url)).json()["data"]["checks"]["model"] == "missing"
        for path, body in [
            ("/face/search", {"collection_name": name, "face_image": photos["person_a_2.jpg"], "top_k": 1}),
            ("/face/insert", {"collection_name": name, "face_image": [photos["person_b_1.jpg"]], "target_id": ["x"]}),
            (
                "/face/update",
                {"collection_name": name, "face_image": [photos["person_b_1.jpg"]], "target_id": ["macron"]},
            ),
            ("/face/compare", {"face_image1": photos["person_a_1.jpg"], "face_image2": photos["person_a_2.jpg"]}),
        ]:
            r = await call(face, path, body)
            assert r.status_code == 503, (path, r.text)
            assert r.json()["err_code"] == 503 and "make models" in r.json()["err_msg"], r.text
        # What needs no model still works.
        await ok(face, "/version", method="GET")
        [status] = (await ok(face, "/collection/status", {"collection_name": [name]}))["status"]
        assert status["feature_num"] == 1
        async with gateway_client(platform) as anonymous:
            r = await anonymous.post("/user/face_recognition_login", json={"image": login_photos["person_a_1.jpg"]})
            assert r.status_code == 503 and r.json()["code"] == 1002
    finally:
        platform.stop_service("face")
        platform.extra_env.pop("LABELHIVE_MODEL_DIR", None)
        platform.start_service("face")
        await platform.wait_ready(url, "face")
    # The restarted service rebuilt its indexes from PostgreSQL.
    results = await search(face, name, photos["person_a_2.jpg"], 1)
    assert results[0]["result"] == "macron" and results[0]["score"] > 0.5
    await ok(face, "/delete/collection", {"collection_name": name})


class _TcpProxy:
    """Forwards a local port to PostgreSQL until `cut()`, which also drops every open connection."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server: asyncio.AbstractServer | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, upstream_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    async def cut(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in self.writers:
            writer.close()


async def test_database_down_is_1001(platform):
    """002's 1001 "Database error": a replica whose PostgreSQL goes away answers it, not a 500."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(platform.database_url)
    proxy = _TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    port = await proxy.start()
    netloc = parts.netloc.rsplit(":", 1)[0] if parts.port else parts.netloc
    env = {**platform.env(), "DATABASE_URL": urlunsplit(parts._replace(netloc=f"{netloc}:{port}"))}
    service_port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "services.face.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(service_port),
        "--no-access-log",
    ]
    platform.processes["face-nodb"] = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        url = f"http://127.0.0.1:{service_port}"
        await platform.wait_ready(f"{url}/readyz", "face-nodb")
        headers = {IDENTITY_HEADER: sign_identity(Identity(1, "db-test", "admin"), platform.secret)}
        async with httpx.AsyncClient(base_url=url + PREFIX, headers=headers, timeout=30) as client:
            r = await client.post("/collection/status", json={"collection_name": []})
            assert r.status_code == 200 and r.json()["err_code"] == 0
            await proxy.cut()
            for path, body in [
                ("/collection/status", {"collection_name": []}),
                ("/create/collection", {"collection_name": "while_down"}),
                ("/delete/id", {"collection_name": "while_down", "target_id": "x"}),
            ]:
                r = await client.post(path, json=body)
                assert r.status_code == 503, (path, r.text)
                assert r.json()["err_code"] == 1001 and r.json()["err_msg"] == "Database error", r.text
    finally:
        platform.stop_service("face-nodb")
        await proxy.cut()


# The engine runs in this process here: insightface 2.1 calls a scikit-image API that 0.26 deprecates.
@pytest.mark.filterwarnings("ignore:`estimate` is deprecated:FutureWarning")
async def test_an_engine_failure_while_storing_is_1008(platform, backing, photos):
    """002's 1008 "Update vectors unsuccessfully": the model fails mid-insert (a GPU out of memory, say).
    The service runs in this process, on the platform's database and Redis, with its engine sabotaged."""
    import logging

    from services.face.app import create_app
    from services.face.settings import FaceSettings

    settings = FaceSettings(
        database_url=backing.database_url,
        redis_url=backing.redis_url,
        redis_namespace=backing.namespace,
        internal_secret=platform.secret,
    )
    app = create_app(settings)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # the service configures logging for itself
    headers = {IDENTITY_HEADER: sign_identity(Identity(1, "fault-test", "admin"), platform.secret)}
    try:
        async with app.router.lifespan_context(app):
            engine = app.state.face.recognizer.engine

            def out_of_memory(items):  # type: ignore[no-untyped-def]
                raise RuntimeError("CUDA failure 2: out of memory")

            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://face" + PREFIX, headers=headers
            ) as client:
                name = f"faults_{free_port()}"
                r = await client.post("/create/collection", json={"collection_name": name})
                assert r.json()["err_code"] == 0
                body = {"collection_name": name, "face_image": [photos["person_a_1.jpg"]], "target_id": ["a"]}
                assert (await client.post("/face/insert", json=body)).json()["success_num"] == 1
                engine.embed_aligned = out_of_memory
                for path, target in (("/face/insert", "b"), ("/face/update", "a")):
                    r = await client.post(path, json={**body, "target_id": [target]})
                    assert r.status_code == 500, r.text
                    assert r.json()["err_code"] == 1008 and r.json()["err_msg"] == "Update vectors unsuccessfully"
                r = await client.post("/collection/status", json={"collection_name": [name]})
                assert r.json()["status"][0]["feature_num"] == 1  # nothing stored, nothing lost
                await client.post("/delete/collection", json={"collection_name": name})
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
