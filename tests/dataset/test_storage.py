"""The object store's guarantees, checked on both backends: the local content-addressed store and the
S3 one against an S3 server the tests start (moto, offline)."""

import asyncio
import hashlib
import io
import os
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.dataset.s3_storage import PART_SIZE, S3ObjectStore, StoreUnavailable
from services.dataset.settings import DatasetSettings
from services.dataset.storage import (
    ByteRange,
    LocalObjectStore,
    ObjectNotFound,
    ObjectStore,
    ObjectTooLarge,
    RangeNotSatisfiable,
    open_object_store,
    parse_byte_range,
)
from shared.launcher import free_port
from tests.s3_server import S3Server, s3_server


async def chunks_of(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


def read(store: ObjectStore, key: str, start: int = 0, end: int | None = None, chunk_size: int = 97) -> bytes:
    async def scenario() -> bytes:
        return await collect(await store.open_stream(key, start, end, chunk_size=chunk_size))

    return asyncio.run(scenario())


def stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@dataclass
class Backend:
    store: ObjectStore
    # Everything the store holds: objects, temp files, unfinished multipart uploads.
    contents: Callable[[], list[str]]


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        root = tmp_path / "objects"
        return Backend(LocalObjectStore(root), lambda: [str(p.relative_to(root)) for p in stored_files(root)])
    server: S3Server = request.getfixturevalue("s3")
    bucket = server.new_bucket()
    store = S3ObjectStore.from_url(f"s3://{bucket}/files", **server.store_config())
    return Backend(store, lambda: server.contents(bucket))


@pytest.fixture
def store(backend: Backend) -> ObjectStore:
    return backend.store


@pytest.fixture
def local_store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


def test_stores_satisfy_protocol(store: ObjectStore) -> None:
    assert isinstance(store, ObjectStore)


def test_settings_choose_the_store(tmp_path: Path, s3: S3Server) -> None:
    assert isinstance(open_object_store(DatasetSettings(data_dir=tmp_path)), LocalObjectStore)
    settings = DatasetSettings(data_dir=tmp_path, object_store="s3://labelhive-files/prod/")
    assert settings.object_store == "s3://labelhive-files/prod"
    assert isinstance(open_object_store(settings), S3ObjectStore)
    for wrong in ("/var/files", "s3://", "s3://UPPER/x", "gs://bucket/x"):
        with pytest.raises(ValueError, match="LABELHIVE_OBJECT_STORE"):
            DatasetSettings(data_dir=tmp_path, object_store=wrong)


def test_s3_layout_same_as_local(s3: S3Server) -> None:
    bucket = s3.new_bucket()
    store = S3ObjectStore.from_url(f"s3://{bucket}/files", **s3.store_config())
    small, large = b"tiny", os.urandom(6 * 1024 * 1024)  # one PUT, and a multipart upload and a copy
    keys = [asyncio.run(store.put_bytes(data)).key for data in (small, large)]
    assert keys == [hashlib.sha256(small).hexdigest(), hashlib.sha256(large).hexdigest()]
    assert sorted(s3.contents(bucket)) == sorted(f"files/{key[:2]}/{key[2:4]}/{key}" for key in keys)
    assert read(store, keys[1], chunk_size=1024 * 1024) == large
    assert store.path(keys[0]) is None


def test_a_second_replica_reads_what_the_first_wrote(s3: S3Server) -> None:
    bucket = s3.new_bucket()
    first, second = (S3ObjectStore.from_url(f"s3://{bucket}/files", **s3.store_config()) for _ in range(2))
    data = os.urandom(7 * 1024 * 1024)
    key = asyncio.run(first.put_stream(chunks_of([data[:3_000_000], data[3_000_000:]]))).key
    assert asyncio.run(second.size(key)) == len(data)
    assert read(second, key, 5_000_000, 5_000_100) == data[5_000_000:5_000_100]
    with second.open(key) as fileobj:
        fileobj.seek(6_000_000)
        assert fileobj.read(10) == data[6_000_000:6_000_010]
    assert asyncio.run(second.delete(key)) is True
    assert asyncio.run(first.exists(key)) is False


def test_s3_unreachable_is_unavailable_not_missing() -> None:
    nobody = S3Server(f"http://127.0.0.1:{free_port()}")
    store = S3ObjectStore.from_url("s3://nobody-listens/files", **nobody.store_config())
    with pytest.raises(StoreUnavailable) as excinfo:
        asyncio.run(store.exists("0" * 64))
    assert excinfo.value.status_code == 503
    with pytest.raises(StoreUnavailable):
        asyncio.run(store.put_bytes(b"abc"))
    assert asyncio.run(store.purge_stale_temp()) == 0  # a start-up clean-up: logged, never fatal


def test_put_stream_content_addressed_with_fan_out(local_store: LocalObjectStore) -> None:
    data = b"hello labelhive" * 1000
    obj = asyncio.run(local_store.put_stream(chunks_of([data[:10], data[10:]])))
    assert obj.key == hashlib.sha256(data).hexdigest()
    assert obj.size == len(data)
    path = local_store.path(obj.key)
    assert path == local_store.root / obj.key[:2] / obj.key[2:4] / obj.key
    assert path.read_bytes() == data


@pytest.mark.parametrize("size", [5000, 6 * 1024 * 1024])  # S3: one PUT, and a multipart upload
def test_same_bytes_stored_once(backend: Backend, tmp_path: Path, size: int) -> None:
    store = backend.store
    data = os.urandom(size)
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
    key = keys.pop()
    assert backend.contents() == [
        f"{prefix}{key[:2]}/{key[2:4]}/{key}" for prefix in ("" if isinstance(store, LocalObjectStore) else "files/",)
    ]
    assert read(store, key, chunk_size=1024 * 1024) == data  # no stray temp files either


def test_error_mid_stream_leaves_nothing(backend: Backend) -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"a" * 6_000_000  # past the flush size and S3's first part, so part of it was sent
        yield b"b" * 6_000_000
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        asyncio.run(backend.store.put_stream(failing()))
    assert backend.contents() == []


def test_cancelled_upload_leaves_nothing(backend: Backend) -> None:
    async def slow() -> AsyncIterator[bytes]:
        yield b"x" * 6_000_000
        yield b"y" * 6_000_000
        await asyncio.sleep(10)
        yield b"never"

    async def scenario() -> None:
        task = asyncio.create_task(backend.store.put_stream(slow()))
        await asyncio.sleep(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert backend.contents() == []


@pytest.mark.parametrize("chunk", [100_000, 1_000_000, 3_000_000])
def test_max_bytes_refused_and_cleaned(backend: Backend, chunk: int) -> None:
    parts = [b"z" * chunk] * -(-12_000_000 // chunk)
    with pytest.raises(ObjectTooLarge) as excinfo:
        asyncio.run(backend.store.put_stream(chunks_of(parts), max_bytes=11_000_000))
    assert excinfo.value.max_bytes == 11_000_000
    assert backend.contents() == []


def test_max_bytes_exact_limit_allowed(backend: Backend) -> None:
    store = backend.store
    obj = asyncio.run(store.put_stream(chunks_of([b"1234", b"5678"]), max_bytes=8))
    assert obj.size == 8
    with pytest.raises(ObjectTooLarge):
        asyncio.run(store.put_bytes(b"123456789", max_bytes=8))
    with pytest.raises(ObjectTooLarge):
        asyncio.run(store.put_fileobj(io.BytesIO(b"123456789"), max_bytes=8))
    assert len(backend.contents()) == 1


def test_range_reads(store: ObjectStore) -> None:
    data = bytes(range(256)) * 40
    key = asyncio.run(store.put_bytes(data)).key

    assert read(store, key) == data
    assert read(store, key, 100, 1000) == data[100:1000]
    assert read(store, key, len(data) - 5) == data[-5:]
    assert read(store, key, 10, 10**9) == data[10:]
    assert read(store, key, len(data)) == b""
    assert read(store, key, 50, 50) == b""
    with pytest.raises(RangeNotSatisfiable):
        read(store, key, len(data) + 1)
    with pytest.raises(RangeNotSatisfiable):
        read(store, key, len(data) + 1, len(data) + 10)
    with store.open(key) as fileobj:
        fileobj.seek(300)
        assert fileobj.read(4) == data[300:304]
        fileobj.seek(-6, io.SEEK_END)
        assert fileobj.read() == data[-6:]


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


def test_missing_and_invalid_keys(store: ObjectStore) -> None:
    missing = "0" * 64
    assert asyncio.run(store.exists(missing)) is False
    assert asyncio.run(store.delete(missing)) is False
    for key in (missing, "../../etc/passwd", "A" * 64, ""):
        if isinstance(store, LocalObjectStore):
            with pytest.raises(ObjectNotFound):
                store.path(key)
        with pytest.raises(ObjectNotFound):
            store.open(key)
        with pytest.raises(ObjectNotFound):
            read(store, key)
        with pytest.raises(ObjectNotFound):
            asyncio.run(store.size(key))
        assert asyncio.run(store.exists(key)) is False


def test_purge_stale_temp(local_store: LocalObjectStore) -> None:
    stale = local_store.root / ".tmp" / "put-crashed.part"
    fresh = local_store.root / ".tmp" / "put-running.part"
    for leftover in (stale, fresh):
        leftover.write_bytes(b"partial")
    os.utime(stale, (0, 0))
    assert asyncio.run(local_store.purge_stale_temp(older_than_seconds=3600)) == 1
    assert not stale.exists() and fresh.exists()


def test_purge_stale_temp_s3(s3: S3Server) -> None:
    bucket = s3.new_bucket()
    store = S3ObjectStore.from_url(f"s3://{bucket}/files", **s3.store_config())
    s3.client().put_object(Bucket=bucket, Key="files/.tmp/put-crashed.part", Body=b"partial")
    kept = asyncio.run(store.put_bytes(b"kept")).key
    assert asyncio.run(store.purge_stale_temp(older_than_seconds=3600)) == 0  # it is young yet
    time.sleep(1.1)  # S3 times have whole seconds
    assert asyncio.run(store.purge_stale_temp(older_than_seconds=1)) == 1
    assert s3.contents(bucket) == [f"files/{kept[:2]}/{kept[2:4]}/{kept}"]


def test_keys_older_than(backend: Backend) -> None:
    store = backend.store

    async def listed(cutoff: float) -> list[str]:
        return sorted([key async for batch in store.keys_older_than(cutoff) for key in batch])

    keys = sorted(asyncio.run(store.put_bytes(os.urandom(100))).key for _ in range(3))
    assert asyncio.run(listed(time.time() - 3600)) == []
    assert asyncio.run(listed(time.time() + 3600)) == keys  # temp files and anything else never listed


def test_exists_size_delete(store: ObjectStore) -> None:
    key = asyncio.run(store.put_bytes(b"abc")).key
    assert asyncio.run(store.exists(key))
    assert asyncio.run(store.size(key)) == 3
    assert asyncio.run(store.delete(key)) is True
    assert asyncio.run(store.exists(key)) is False


def test_200_mb_stream_keeps_memory_flat(store: ObjectStore) -> None:
    # S3: the part being read, the one the writer buffers and two in flight (obstore sends our buffers
    # without copying them, so they count here); the local store flushes every MiB.
    limit = 8 * 1024 * 1024 if isinstance(store, LocalObjectStore) else 4 * PART_SIZE + 1024 * 1024
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
    assert peak < limit, f"peak traced memory {peak} bytes"

    tracemalloc.start()
    try:
        digest = hashlib.sha256()

        async def read_back() -> None:
            async for part in await store.open_stream(obj.key):
                digest.update(part)

        asyncio.run(read_back())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest.hexdigest() == obj.key
    assert peak < 8 * 1024 * 1024, f"peak traced memory {peak} bytes"
    assert asyncio.run(store.delete(obj.key))  # pytest keeps recent tmp dirs: don't leave 200 MB behind


def test_empty_endpoint_variable_means_unset(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    # docker compose passes an unset `${AWS_ENDPOINT_URL:-}` as "": obstore would panic on it.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "")
    bucket = s3.new_bucket()
    store = S3ObjectStore.from_url(f"s3://{bucket}/files", **s3.store_config())
    assert "AWS_ENDPOINT_URL" not in os.environ
    key = asyncio.run(store.put_bytes(b"compose")).key
    assert read(store, key) == b"compose"
