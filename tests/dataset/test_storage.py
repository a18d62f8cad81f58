import asyncio
import hashlib
import io
import os
import tracemalloc
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from services.dataset.storage import (
    ByteRange,
    LocalObjectStore,
    ObjectNotFound,
    ObjectStore,
    ObjectTooLarge,
    RangeNotSatisfiable,
    parse_byte_range,
)


async def chunks_of(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


def stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


def test_local_store_satisfies_protocol(store: LocalObjectStore) -> None:
    assert isinstance(store, ObjectStore)


def test_put_stream_content_addressed_with_fan_out(store: LocalObjectStore) -> None:
    data = b"hello labelhive" * 1000
    obj = asyncio.run(store.put_stream(chunks_of([data[:10], data[10:]])))
    assert obj.key == hashlib.sha256(data).hexdigest()
    assert obj.size == len(data)
    path = store.path(obj.key)
    assert path == store.root / obj.key[:2] / obj.key[2:4] / obj.key
    assert path.read_bytes() == data


def test_same_bytes_stored_once(store: LocalObjectStore, tmp_path: Path) -> None:
    data = os.urandom(5000)
    source = tmp_path / "upload.bin"
    source.write_bytes(data)

    async def scenario() -> set[str]:
        keys = {
            (await store.put_stream(chunks_of([data]))).key,
            (await store.put_bytes(data)).key,
            (await store.put_file(source)).key,
            (await store.put_fileobj(io.BytesIO(data))).key,
        }
        return keys

    keys = asyncio.run(scenario())
    assert len(keys) == 1
    assert stored_files(store.root) == [store.path(keys.pop())]  # no stray temp files either


def test_error_mid_stream_leaves_nothing(store: LocalObjectStore) -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"a" * 3_000_000  # past the flush size, so part of it reached the temp file
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        asyncio.run(store.put_stream(failing()))
    assert stored_files(store.root) == []


def test_cancelled_upload_leaves_nothing(store: LocalObjectStore) -> None:
    async def slow() -> AsyncIterator[bytes]:
        yield b"x" * 2_000_000
        await asyncio.sleep(10)
        yield b"never"

    async def scenario() -> None:
        task = asyncio.create_task(store.put_stream(slow()))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert stored_files(store.root) == []


@pytest.mark.parametrize("chunk", [100, 1_000_000, 3_000_000])
def test_max_bytes_refused_and_cleaned(store: LocalObjectStore, chunk: int) -> None:
    parts = [b"z" * chunk] * -(-5_000_000 // chunk)
    with pytest.raises(ObjectTooLarge) as excinfo:
        asyncio.run(store.put_stream(chunks_of(parts), max_bytes=4_000_000))
    assert excinfo.value.max_bytes == 4_000_000
    assert stored_files(store.root) == []


def test_max_bytes_exact_limit_allowed(store: LocalObjectStore) -> None:
    obj = asyncio.run(store.put_stream(chunks_of([b"1234", b"5678"]), max_bytes=8))
    assert obj.size == 8
    with pytest.raises(ObjectTooLarge):
        asyncio.run(store.put_bytes(b"123456789", max_bytes=8))
    with pytest.raises(ObjectTooLarge):
        asyncio.run(store.put_fileobj(io.BytesIO(b"123456789"), max_bytes=8))
    assert len(stored_files(store.root)) == 1


def test_range_reads(store: LocalObjectStore) -> None:
    data = bytes(range(256)) * 40
    key = asyncio.run(store.put_bytes(data)).key

    async def read(start: int = 0, end: int | None = None, chunk_size: int = 97) -> bytes:
        return await collect(store.iter_bytes(key, start, end, chunk_size=chunk_size))

    assert asyncio.run(read()) == data
    assert asyncio.run(read(100, 1000)) == data[100:1000]
    assert asyncio.run(read(len(data) - 5)) == data[-5:]
    assert asyncio.run(read(10, 10**9)) == data[10:]
    assert asyncio.run(read(len(data))) == b""
    with pytest.raises(RangeNotSatisfiable):
        store.iter_bytes(key, len(data) + 1)
    with store.open(key) as fileobj:
        fileobj.seek(300)
        assert fileobj.read(4) == data[300:304]


def test_parse_byte_range() -> None:
    assert parse_byte_range(None, 100) is None
    assert parse_byte_range("bytes=0-9", 100) == ByteRange(0, 10, 100)
    assert parse_byte_range("bytes=90-", 100) == ByteRange(90, 100, 100)
    assert parse_byte_range("bytes=-10", 100) == ByteRange(90, 100, 100)
    assert parse_byte_range("bytes=-500", 100) == ByteRange(0, 100, 100)
    assert parse_byte_range("bytes=50-5000", 100) == ByteRange(50, 100, 100)
    assert parse_byte_range("bytes=0-9", 100).content_range == "bytes 0-9/100"  # type: ignore[union-attr]
    for ignored in ("items=0-1", "bytes=0-1,5-6", "bytes=5-2", "bytes=abc", "bytes=--1"):
        assert parse_byte_range(ignored, 100) is None
    for unsatisfiable in ("bytes=100-", "bytes=200-300", "bytes=-0"):
        with pytest.raises(RangeNotSatisfiable):
            parse_byte_range(unsatisfiable, 100)


def test_missing_and_invalid_keys(store: LocalObjectStore) -> None:
    missing = "0" * 64
    assert asyncio.run(store.exists(missing)) is False
    assert asyncio.run(store.delete(missing)) is False
    for key in (missing, "../../etc/passwd", "A" * 64, ""):
        with pytest.raises(ObjectNotFound):
            store.path(key)
        with pytest.raises(ObjectNotFound):
            store.open(key)
        with pytest.raises(ObjectNotFound):
            store.iter_bytes(key)
        with pytest.raises(ObjectNotFound):
            asyncio.run(store.size(key))


def test_purge_stale_temp(store: LocalObjectStore) -> None:
    stale = store.root / ".tmp" / "put-crashed.part"
    fresh = store.root / ".tmp" / "put-running.part"
    for leftover in (stale, fresh):
        leftover.write_bytes(b"partial")
    os.utime(stale, (0, 0))
    assert store.purge_stale_temp(older_than_seconds=3600) == 1
    assert not stale.exists() and fresh.exists()


def test_exists_size_delete(store: LocalObjectStore) -> None:
    key = asyncio.run(store.put_bytes(b"abc")).key
    assert asyncio.run(store.exists(key))
    assert asyncio.run(store.size(key)) == 3
    assert asyncio.run(store.delete(key)) is True
    assert asyncio.run(store.exists(key)) is False


def test_200_mb_stream_keeps_memory_flat(store: LocalObjectStore) -> None:
    chunk = 64 * 1024
    count = 200 * 1024 * 1024 // chunk
    expected = hashlib.sha256()

    async def upload() -> AsyncIterator[bytes]:
        for n in range(count):
            part = n.to_bytes(4, "big") * (chunk // 4)  # distinct chunks: no accidental sharing
            expected.update(part)
            yield part

    tracemalloc.start()
    try:
        obj = asyncio.run(store.put_stream(upload()))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert obj.size == count * chunk
    assert obj.key == expected.hexdigest()
    assert peak < 8 * 1024 * 1024, f"peak traced memory {peak} bytes"

    tracemalloc.start()
    try:
        digest = hashlib.sha256()

        async def read_back() -> None:
            async for part in store.iter_bytes(obj.key):
                digest.update(part)

        asyncio.run(read_back())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest.hexdigest() == obj.key
    assert peak < 8 * 1024 * 1024
    assert asyncio.run(store.delete(obj.key))  # pytest keeps recent tmp dirs: don't leave 200 MB behind
