"""The detect service against its own model: images per second through the API (gateway, multipart,
micro-batcher, drawing, base64, the record on the Redis stream) next to the bare ONNX model in this
process on the same images, in one run:

    batch 1        in-process: predict_batch + render of 1 image per call
                   API:        1 client, 1 image per request, back to back
    batch 8        in-process: 8 images per call
                   API:        1 client, 8 images per request
    16 clients     in-process: 16 images per call (the largest batch the micro-batcher forms)
                   API:        16 concurrent clients, 1 image per request each: the micro-batcher
                               gathers those that wait while the model runs (up to 16 images)

Per row: images/s both ways and their ratio (API / in-process), p50/p99 latency per call (in-process)
and per request (API), and the CPU milliseconds per image of the inference side (this process for
in-process; the detect service + gateway for the API), of the stats service storing the records and
of the load generator (this process during the API slices). Each measurement is split into
BENCH_ROUNDS slices alternating in-process and API, so that a change in the shared machine's other
load hits both sides alike; besides the ratio of the whole measurement, the median (and range) of the
rounds' own ratios is shown. The load generator sends whole requests built once beforehand as bytes
over keep-alive connections and parses the answers with httptools (`RawPoster`), so that the CPU it
takes from the machine under test is a few tenths of a millisecond per request (httpx took 1.4-1.8 ms
per image).

The 16-client row is no pure batching test: the micro-batcher's batches are as large as the requests
that are waiting when the previous batch ends, and the service draws results, parses uploads and
answers on the same CPUs that run the model.

Images: the first BENCH_DETECT_IMAGES of NEU-Seg's test split (../shared/datasets/neu-seg, or
BENCH_NEU_SEG), sent as their stored JPEG bytes; without the data set, generated steel plates
(tests/fixtures/steel.py), with a note. The platform runs auth (the API key), detect and stats (so the
detections stream is consumed as in production).

    BENCH_DETECT_DURATION=15  seconds per measurement (BENCH_DETECT_WARMUP=1 before each, BENCH_ROUNDS=3)
    BENCH_DETECT_ROWS=1,3     only these rows (1-based), e.g. batch 1 and 16 clients
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httptools
import httpx
from PIL import Image

from bench.common import (
    BenchPlatform,
    Measurement,
    format_table,
    generate_load,
    load_client,
    logged_message,
    machine_info,
    merge,
    running_platform,
)
from services.detect.segmenter import DefectSegmenter
from services.detect.settings import DetectSettings
from shared.images import decode_image
from shared.launcher import ROOT
from tools.detect_training.evaluate_api import (
    admin_api_key,
    detect_files,
    post_detect,
)

NEU_SEG = Path(os.environ.get("BENCH_NEU_SEG", ROOT.parent / "shared" / "datasets" / "neu-seg"))
IMAGES = int(os.environ.get("BENCH_DETECT_IMAGES", "64"))
DURATION = float(os.environ.get("BENCH_DETECT_DURATION", "15"))
WARMUP = float(os.environ.get("BENCH_DETECT_WARMUP", "1"))
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "3")))
CLIENTS = 16


@dataclass(frozen=True)
class Row:
    name: str
    local_batch: int  # images per in-process call
    clients: int  # concurrent API clients
    per_request: int  # images per API request


ROWS = (Row("batch 1", 1, 1, 1), Row("batch 8", 8, 1, 8), Row(f"{CLIENTS} clients", CLIENTS, CLIENTS, 1))
SELECTED = [int(n) for n in os.environ.get("BENCH_DETECT_ROWS", "").split(",") if n.strip()]


# Images ------------------------------------------------------------------------------------------


def load_images(count: int) -> tuple[list[tuple[str, bytes]], str]:
    """(file name, bytes) of the images to send, and where they come from."""
    listing = NEU_SEG / "ImageSets" / "Segmentation" / "test.txt"
    if listing.is_file():
        from tools.detect_training.data import image_path, split_ids

        paths = [image_path(NEU_SEG, "test", i) for i in split_ids(NEU_SEG, "test", count)]
        return [(p.name, p.read_bytes()) for p in paths], f"NEU-Seg test split, first {len(paths)} images"
    import numpy as np

    from tests.fixtures.steel import patch_image, png_bytes, scratch_image, steel_photo

    images = []
    for seed in range(count):
        kind = seed % 3
        if kind == 0:
            data = steel_photo(seed)
        else:
            array = scratch_image(seed=seed) if kind == 1 else patch_image(seed=seed)
            data = png_bytes(Image.fromarray(np.asarray(array)))
        images.append((f"steel_{seed}.png", data))
    print(
        f"[bench] note: {NEU_SEG} is missing (set BENCH_NEU_SEG), so the images are {count} generated "
        "200x200 steel plates (tests/fixtures/steel.py), not real photos",
        flush=True,
    )
    return images, f"{count} generated 200x200 steel plates"


# In-process ------------------------------------------------------------------------------------


def measure_local(
    segmenter: DefectSegmenter, images: Sequence[Image.Image], batch: int, duration: float, label: str
) -> Measurement:
    """predict_batch + render of `batch` images per call, back to back for `duration` seconds."""
    cycle = itertools.cycle(images)
    latencies = []
    clock = time.perf_counter
    cpu_before = time.process_time()
    started = clock()
    while clock() - started < duration:
        chunk = [next(cycle) for _ in range(batch)]
        before = clock()
        for image, result in zip(chunk, segmenter.predict_batch(chunk), strict=True):
            segmenter.render(image, result)
        latencies.append(clock() - before)
    elapsed = clock() - started
    cpu = {"in-process": time.process_time() - cpu_before}
    return Measurement(label, 1, elapsed, sorted(latencies), cpu_seconds=cpu)


# Through the API -------------------------------------------------------------------------------


def build_forms(uploads: Sequence[tuple[str, bytes]], per_request: int) -> list[tuple[bytes, str]]:
    """(body, Content-Type) of every distinct request of `per_request` images taken in turn from `uploads`."""
    cycle = itertools.cycle(uploads)
    forms = []
    for _ in range(math.lcm(len(uploads), per_request) // per_request):
        form = httpx.Request("POST", "http://bench/", files=detect_files([next(cycle) for _ in range(per_request)]))
        forms.append((form.read(), form.headers["content-type"]))
    return forms


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: writes a request's bytes as given, reads the answer with
    httptools (the C parser uvicorn uses)."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._body: list[bytes] = []
        self._answer: asyncio.Future[httpx.Response] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"unparsable answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._fail(httpx.ReadError(f"connection closed before the answer ended ({exc})"))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(httpx.Response(self._parser.get_status_code(), content=b"".join(self._body)))

    def _fail(self, error: httpx.HTTPError) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)

    @property
    def reusable(self) -> bool:
        return self._transport is not None and self._parser.should_keep_alive()

    async def exchange(self, request: bytes) -> httpx.Response:
        assert self._transport is not None
        self._body = []
        self._answer = asyncio.get_running_loop().create_future()
        self._transport.write(request)
        return await self._answer

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class RawPoster:
    """The load generator's client: requests built once as bytes, sent over keep-alive connections,
    their answers parsed in C. The client shares the machine (and, under a loaded kernel, the CPU share)
    with the services it measures, so every millisecond it spends per request is one the API side of
    the ratio loses: httpx spent 1.4-1.8 ms per image here, this about a tenth of that. Answers come
    back as `httpx.Response`s (status and body) for `generate_load`."""

    def __init__(self, url: str) -> None:
        parts = httpx.URL(url)
        self.host, self.port = parts.host, parts.port or 80
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()

    async def post(self, request: bytes) -> httpx.Response:
        connection = await self._connection()
        try:
            async with asyncio.timeout(60):
                answer = await connection.exchange(request)
        except (TimeoutError, httpx.HTTPError) as exc:
            self._drop(connection)
            if isinstance(exc, TimeoutError):
                raise httpx.ReadTimeout("no answer within 60 s") from None
            raise
        if connection.reusable:
            self._idle.append(connection)
        else:
            self._drop(connection)
        return answer

    async def _connection(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if connection.reusable:  # the server may have closed it while it was idle
                return connection
            self._drop(connection)
        try:
            _, connection = await asyncio.get_running_loop().create_connection(_Connection, self.host, self.port)
        except OSError as exc:
            raise httpx.ConnectError(str(exc)) from exc
        self._open.add(connection)
        return connection

    def _drop(self, connection: _Connection) -> None:
        connection.close()
        self._open.discard(connection)

    def close(self) -> None:
        for connection in self._open:
            connection.close()
        self._open.clear()
        self._idle.clear()


def raw_requests(url: str, key: str, forms: Sequence[tuple[bytes, str]]) -> list[bytes]:
    """Each form as the bytes of a whole HTTP/1.1 request to `url`."""
    parts = httpx.URL(url)
    requests = []
    for body, content_type in forms:
        head = (
            f"POST {parts.raw_path.decode()} HTTP/1.1\r\nHost: {parts.netloc.decode()}\r\nX-API-Key: {key}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        requests.append(head.encode("latin-1") + body)
    return requests


async def measure_api(
    poster: RawPoster,
    bench: BenchPlatform,
    requests: Sequence[bytes],
    row: Row,
    duration: float,
    label: str,
) -> Measurement:
    cycle = itertools.cycle(requests)

    async def request(_: object) -> httpx.Response:
        return await poster.post(next(cycle))

    client_cpu = time.process_time()
    result = await generate_load(
        poster,  # type: ignore[arg-type]  # only handed back to `request`
        request,
        concurrency=row.clients,
        duration=duration,
        label=label,
        cpu_of=bench.pids("detect", "gateway", "stats"),
    )
    result.cpu_seconds["client"] = time.process_time() - client_cpu
    return result


def service_providers(bench: BenchPlatform) -> str:
    """What the detect service logged at start-up: its model's onnxruntime providers."""
    return logged_message(bench, "detect", "defect model").split(" on ", 1)[-1]


# Report ----------------------------------------------------------------------------------------


def _cpu_ms_per_image(m: Measurement, images: int, *names: str) -> str:
    seconds = sum(v for k, v in m.cpu_seconds.items() if k in names)
    return f"{seconds / images * 1000:.1f}" if images else "n/a"


@dataclass(frozen=True)
class Result:
    row: Row
    local: Measurement  # the rounds merged
    api: Measurement
    round_ratios: list[float]  # each round's API images/s over its in-process images/s


def images_per_second(m: Measurement, images_per_call: int) -> float:
    return m.requests * images_per_call / m.elapsed if m.elapsed > 0 else math.nan


def print_table(results: list[Result]) -> None:
    headers = [
        "row",
        "in-proc img/s",
        "API img/s",
        "ratio API/in-proc",
        "ratio per round: median (min-max)",
        "in-proc p50 ms",
        "in-proc p99 ms",
        "API p50 ms",
        "API p99 ms",
        "cpu ms/img in-proc",
        "cpu ms/img detect+gw",
        "cpu ms/img stats",
        "cpu ms/img client",
        "errors",
    ]
    table = []
    for row, local, api, round_ratios in ((r.row, r.local, r.api, r.round_ratios) for r in results):
        local_images, api_images = local.requests * row.local_batch, api.requests * row.per_request
        local_ips, api_ips = local_images / local.elapsed, api_images / api.elapsed
        ratio = api_ips / local_ips if local_ips else math.nan
        rounds = f"{statistics.median(round_ratios):.2f} ({min(round_ratios):.2f}-{max(round_ratios):.2f})"
        table.append(
            [
                f"{row.name}: {row.local_batch}/call vs {row.clients} x {row.per_request}/req",
                f"{local_ips:.1f}",
                f"{api_ips:.1f}",
                f"{ratio:.2f}",
                rounds,
                f"{local.p50_ms:.1f}",
                f"{local.p99_ms:.1f}",
                f"{api.p50_ms:.1f}",
                f"{api.p99_ms:.1f}",
                _cpu_ms_per_image(local, local_images, "in-process"),
                _cpu_ms_per_image(api, api_images, "detect", "gateway"),
                _cpu_ms_per_image(api, api_images, "stats"),
                _cpu_ms_per_image(api, api_images, "client"),
                api.errors,
            ]
        )
    print(format_table(headers, table), flush=True)
    for result in results:
        if result.api.errors:
            print(f"  {result.api.label}: {result.api.errors} errors, first: {result.api.first_error}")


async def main() -> None:
    print(machine_info(), flush=True)
    uploads, origin = load_images(IMAGES)
    decoded = [decode_image(data) for _, data in uploads]
    print(
        f"images: {origin}; each measurement {WARMUP:g}s warm-up, then {DURATION:g}s in {ROUNDS} slices "
        f"alternating in-process and API",
        flush=True,
    )
    settings = DetectSettings()
    segmenter = DefectSegmenter(settings.model_path, num_threads=settings.inference_threads)
    print(
        f"in-process: onnxruntime providers {segmenter.providers}, {settings.inference_threads} inference "
        "thread(s), as the service",
        flush=True,
    )
    rows = [row for number, row in enumerate(ROWS, 1) if not SELECTED or number in SELECTED]
    async with running_platform(["auth", "detect", "stats"], name="detect") as bench:
        print(
            f"detect service: onnxruntime providers {service_providers(bench)} (from its log); micro-batcher "
            f"max_batch {settings.max_batch}, no wait for company; {settings.image_threads} image thread(s)",
            flush=True,
        )
        key = await admin_api_key(bench.gateway_url, bench.admin_user, bench.admin_password, "bench-detect")
        results: list[Result] = []
        async with load_client(CLIENTS, timeout=60) as client:
            # Same model, same post-processing: the API must say what the in-process model says.
            sample = uploads[:8]
            answers = await post_detect(client, f"{bench.gateway_url}/api/detect", sample, {"X-API-Key": key})
            local = segmenter.predict_batch(decoded[:8])
            agree = sum(
                a["labels"] == r.labels and a["defect_count"] == r.defect_count
                for a, r in zip(answers, local, strict=True)
            )
            print(
                f"check: API and in-process agree on labels and defect_count for {agree}/{len(sample)} images",
                flush=True,
            )
            if agree != len(sample):
                raise AssertionError("the API and the in-process model disagree")
        poster = RawPoster(bench.gateway_url)
        try:
            for row in rows:
                requests = raw_requests(f"{bench.gateway_url}/api/detect", key, build_forms(uploads, row.per_request))
                if WARMUP > 0:
                    await asyncio.to_thread(measure_local, segmenter, decoded, row.local_batch, WARMUP, "warm-up")
                    await measure_api(poster, bench, requests, row, WARMUP, "warm-up")
                local_parts, api_parts = [], []
                for _ in range(ROUNDS):
                    local_parts.append(
                        await asyncio.to_thread(
                            measure_local, segmenter, decoded, row.local_batch, DURATION / ROUNDS, row.name
                        )
                    )
                    api_parts.append(await measure_api(poster, bench, requests, row, DURATION / ROUNDS, row.name))
                local_m, api_m = merge(local_parts), merge(api_parts)
                round_ratios = [
                    images_per_second(a, row.per_request) / images_per_second(local, row.local_batch)
                    for local, a in zip(local_parts, api_parts, strict=True)
                ]
                results.append(Result(row, local_m, api_m, round_ratios))
                print(
                    f"  {row.name}: in-process {images_per_second(local_m, row.local_batch):.1f} img/s, "
                    f"API {images_per_second(api_m, row.per_request):.1f} img/s "
                    f"({api_m.requests} requests, {api_m.errors} errors)",
                    flush=True,
                )
        finally:
            poster.close()
    print()
    print(
        "detect: bare model in this process (DefectSegmenter.predict_batch + render, images decoded once "
        "beforehand) vs POST /api/detect through the gateway.\nratio = API images/s / in-process images/s; "
        "latency per in-process call / per API request; cpu ms/img: in-process = this process, detect+gw = "
        "the detect service and gateway processes,\nstats = the stats service storing the records (PostgreSQL's own "
        "CPU not counted), client = this process (the load generator) during the API slices"
    )
    print_table(results)
