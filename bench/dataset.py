"""The dataset service under real data: NEU-DET (1800 steel photos with Pascal VOC boxes) imported through
000's `upload_images`, exported to COCO, and a 200 MB upload streamed to the media bed.

    1. import    every image with its XML, BENCH_DATASET_BATCH pairs per request, BENCH_DATASET_CONCURRENCY
                 requests at a time, through the gateway: images per second, and the dataset service's peak
                 resident memory (VmHWM) over the import
    2. export    GET /dataset/export/{id}?format=coco: the box count must equal the XML files' (4189 for the
                 full set), read back with pycocotools when it is installed
    3. media     a 200 MB body streamed to POST /video/ (never held in memory by the client either), then
                 read back by range: the service's peak memory during the upload must stay under 150 MB
                 (the high-water mark is reset first, where the kernel allows it)

The data set lives outside the project (../shared/datasets/neu-det, or BENCH_NEU_DET); without it the
benchmark says so and skips.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Self

import httpx

from bench.common import machine_info, running_platform
from shared.launcher import ROOT

NEU_DET = Path(os.environ.get("BENCH_NEU_DET", ROOT.parent / "shared" / "datasets" / "neu-det"))
FOLDERS = (("IMAGES", "ANNOTATIONS"), ("Validation_Images", "Validation_Annotations"))
LABELS = ("crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches")
BATCH = int(os.environ.get("BENCH_DATASET_BATCH", "50"))
CONCURRENCY = int(os.environ.get("BENCH_DATASET_CONCURRENCY", "4"))
MEDIA_BYTES = int(os.environ.get("BENCH_MEDIA_MB", "200")) * 1024 * 1024
MEDIA_PEAK_LIMIT = 150 * 1024 * 1024
MB = 1024 * 1024


def memory_kib(pid: int, field: str) -> int:
    """A `Vm*` line of /proc/<pid>/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")


def reset_peak(pid: int) -> bool:
    """Resets the process's VmHWM to its current RSS (Linux >= 4.0, same user)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class PeakSampler:
    """Samples VmRSS while a step runs: the fallback where the high-water mark cannot be reset."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval, self.peak_kib = pid, interval, 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.peak_kib = max(self.peak_kib, memory_kib(self.pid, "VmRSS"))
            await asyncio.sleep(self.interval)

    def __enter__(self) -> Self:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def pairs() -> list[tuple[Path, Path]]:
    found = []
    for image_dir, xml_dir in FOLDERS:
        for image in sorted((NEU_DET / image_dir).glob("*.jpg")):
            found.append((image, NEU_DET / xml_dir / f"{image.stem}.xml"))
    return found


def box_count(files: list[tuple[Path, Path]]) -> int:
    return sum(len(re.findall(rb"<object>", xml.read_bytes())) for _, xml in files)


async def manager_client(gateway_url: str) -> httpx.AsyncClient:
    """A requester (001's manager registration needs no mail), logged in with a bearer token."""
    name, password = f"bench_{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    client = httpx.AsyncClient(base_url=gateway_url, timeout=120)
    response = await client.post("/user/register-manager", json={"username": name, "password": password})
    if response.json().get("response") != "注册成功":
        raise RuntimeError(f"register failed: {response.status_code} {response.text}")
    response = await client.post("/user/login", json={"user_name": name, "password": password})
    token = response.cookies.get("labelhive_session")
    if response.status_code != 200 or not token:
        raise RuntimeError(f"login failed: {response.status_code} {response.text}")
    client.cookies.clear()
    client.headers["Authorization"] = f"Bearer {token}"
    return client


async def import_dataset(client: httpx.AsyncClient, name: str, files: list[tuple[Path, Path]]) -> float:
    batches = [files[i : i + BATCH] for i in range(0, len(files), BATCH)]
    queue: asyncio.Queue[list[tuple[Path, Path]]] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)

    async def worker() -> None:
        while not queue.empty():
            batch = queue.get_nowait()
            parts = []
            for image, xml in batch:
                parts.append(("upload_image_site", (image.name, image.read_bytes(), "image/jpeg")))
                parts.append(("label_file", (xml.name, xml.read_bytes(), "application/xml")))
            response = await client.post(f"/data_module/upload_images/{name}", files=parts)
            if response.status_code != 200 or response.json().get("err_no") != 0:
                raise RuntimeError(f"upload failed: {response.status_code} {response.text[:300]}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.perf_counter() - started


async def export_coco(client: httpx.AsyncClient, dataset_id: str) -> tuple[int, int, float, int]:
    started = time.perf_counter()
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        async with client.stream("GET", f"/dataset/export/{dataset_id}", params={"format": "coco"}) as response:
            if response.status_code != 200:
                raise RuntimeError(f"export failed: {response.status_code} {(await response.aread())[:300]!r}")
            async for chunk in response.aiter_bytes():
                out.write(chunk)
        out.flush()
        elapsed = time.perf_counter() - started
        size = out.tell()
        try:
            from pycocotools.coco import COCO
        except ImportError:
            import json

            data = json.loads(Path(out.name).read_bytes())
            return len(data["images"]), len(data["annotations"]), elapsed, size
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            coco = COCO(out.name)
        return len(coco.getImgIds()), len(coco.getAnnIds()), elapsed, size


async def media_body(boundary: str, size: int) -> AsyncIterator[bytes]:
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="video"; filename="bench.mp4"\r\n'
        f"Content-Type: video/mp4\r\n\r\n"
    ).encode()
    head = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isommp41"
    block = os.urandom(MB)
    yield head
    sent = len(head)
    while sent < size:
        chunk = block[: min(MB, size - sent)]
        sent += len(chunk)
        yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()


async def stream_media(client: httpx.AsyncClient, size: int) -> tuple[str, float]:
    boundary = secrets.token_hex(16)
    length = (
        len(
            f'--{boundary}\r\nContent-Disposition: form-data; name="video"; filename="bench.mp4"\r\n'
            f"Content-Type: video/mp4\r\n\r\n".encode()
        )
        + size
        + len(f"\r\n--{boundary}--\r\n".encode())
    )
    started = time.perf_counter()
    response = await client.post(
        "/video/",
        content=media_body(boundary, size),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(length)},
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 200 or response.json().get("code") != 0:
        raise RuntimeError(f"media upload failed: {response.status_code} {response.text[:300]}")
    return response.json()["data"]["url"], elapsed


async def main() -> None:
    print(machine_info(), flush=True)
    if not NEU_DET.is_dir():
        print(f"[bench] dataset: skipped, {NEU_DET} is missing (set BENCH_NEU_DET to NEU-DET's folder)")
        return
    files = pairs()
    expected_boxes = box_count(files)
    print(
        f"NEU-DET: {len(files)} images, {expected_boxes} boxes; batches of {BATCH} image+XML pairs, "
        f"{CONCURRENCY} requests at a time, through the gateway",
        flush=True,
    )
    async with running_platform(["auth", "dataset"], name="dataset") as bench:
        pid = bench.pids("dataset")["dataset"]
        client = await manager_client(bench.gateway_url)
        try:
            name = f"neu-det-{secrets.token_hex(3)}"
            response = await client.post(
                "/data_module/create_dataset",
                files={
                    "name": (None, name),
                    "data_type": (None, "3"),
                    "desc": (None, "NEU-DET steel surface defects"),
                    "label_type": (None, ",".join(f"{i}:{label}" for i, label in enumerate(LABELS, 1))),
                },
            )
            if response.json().get("err_no") != 0:
                raise RuntimeError(f"create_dataset failed: {response.text}")
            dataset_id = response.json()["dataset_id"]
            rss_before = memory_kib(pid, "VmRSS")

            elapsed = await import_dataset(client, name, files)
            print(
                f"import:  {len(files)} images in {elapsed:.1f}s = {len(files) / elapsed:.1f} images/s; dataset "
                f"service RSS {rss_before / 1024:.0f} MB before, peak (VmHWM) {memory_kib(pid, 'VmHWM') / 1024:.0f} "
                f"MB",
                flush=True,
            )

            images, boxes, elapsed, size = await export_coco(client, dataset_id)
            verdict = "ok" if (images, boxes) == (len(files), expected_boxes) else "MISMATCH"
            print(
                f"export:  COCO {size / MB:.1f} MB in {elapsed:.2f}s: {images} images, {boxes} boxes "
                f"(expected {len(files)}, {expected_boxes}): {verdict}",
                flush=True,
            )
            if verdict != "ok":
                raise AssertionError("the COCO export lost images or boxes")

            reset = reset_peak(pid)
            with PeakSampler(pid) as sampler:
                url, elapsed = await stream_media(client, MEDIA_BYTES)
            peak_kib = memory_kib(pid, "VmHWM") if reset else sampler.peak_kib
            tail = await client.get(url, headers={"Range": "bytes=-16"})
            if tail.status_code != 206 or len(tail.content) != 16:
                raise RuntimeError(f"range read failed: {tail.status_code}")
            verdict = "ok" if peak_kib * 1024 < MEDIA_PEAK_LIMIT else "OVER THE LIMIT"
            print(
                f"media:   {MEDIA_BYTES / MB:.0f} MB streamed to /video/ in {elapsed:.1f}s "
                f"({MEDIA_BYTES / MB / elapsed:.0f} MB/s); dataset service peak RSS during the upload "
                f"{peak_kib / 1024:.0f} MB ({'VmHWM after reset' if reset else 'sampled VmRSS'}), limit "
                f"{MEDIA_PEAK_LIMIT / MB:.0f} MB: {verdict}",
                flush=True,
            )
            if verdict != "ok":
                raise AssertionError("the media upload did not stream")
        finally:
            await client.aclose()
