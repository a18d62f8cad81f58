import io
import random
import stat
import struct
import time
import zipfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from PIL import Image

from services.dataset import ingest
from services.dataset.ingest import (
    BadDataType,
    BadText,
    CorruptArchive,
    DecompressionBomb,
    ImageInfo,
    ImageRejected,
    IngestError,
    TooLarge,
    UnsafeName,
    UnsupportedEntry,
    check_image,
    check_sequence,
    decode_text,
    iter_zip_members,
    safe_member_name,
    sanitize_filename,
    zip_names,
)

GIB = 1024**3

# ------------------------------------------------------------------------------------ zip crafting


@dataclass
class RawEntry:
    """A zip member written byte by byte, so headers can say whatever a test needs them to say."""

    name: str
    payload: bytes  # the member's data exactly as stored (already compressed when method is deflate)
    file_size: int
    crc: int
    method: int = zipfile.ZIP_STORED
    flags: int = 0
    external_attr: int = (stat.S_IFREG | 0o644) << 16


def stored(name: str, data: bytes, **overrides: int) -> RawEntry:
    return replace(RawEntry(name, data, len(data), zlib.crc32(data)), **overrides)


def raw_zip(entries: list[RawEntry]) -> bytes:
    body = io.BytesIO()
    central = io.BytesIO()
    for entry in entries:
        name = entry.name.encode()
        offset = body.tell()
        body.write(
            struct.pack(
                "<4s2B4HL2L2H",
                b"PK\x03\x04",
                20,
                0,
                entry.flags,
                entry.method,
                0,
                0x21,
                entry.crc,
                len(entry.payload),
                entry.file_size,
                len(name),
                0,
            )
        )
        body.write(name + entry.payload)
        central.write(
            struct.pack(
                "<4s4B4HL2L5H2L",
                b"PK\x01\x02",
                20,
                3,
                20,
                0,
                entry.flags,
                entry.method,
                0,
                0x21,
                entry.crc,
                len(entry.payload),
                entry.file_size,
                len(name),
                0,
                0,
                0,
                0,
                entry.external_attr,
                offset,
            )
        )
        central.write(name)
    directory = central.getvalue()
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(directory), body.tell(), 0)
    return body.getvalue() + directory + end


def deflated_zeros(size: int) -> bytes:
    """Raw deflate data for ``size`` zero bytes, built from one repeated block: a 1 GiB bomb costs
    milliseconds to make. After a full flush the compressor starts afresh, so each block is identical."""
    block = 1024 * 1024
    assert size % block == 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = compressor.compress(bytes(block)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return segment * (size // block) + compressor.flush(zlib.Z_FINISH)


def members(data: bytes, **caps: int) -> dict[str, bytes]:
    return {name: reader.read() for name, reader in iter_zip_members(io.BytesIO(data), **caps)}


def normal_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------- file names


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("cat.jpg", "cat.jpg"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\Desktop\\dogs.jpg", "dogs.jpg"),
        ("..", "file"),
        ("", "file"),
        (".hidden.png", "hidden.png"),
        ("a\x00b\x1f.png", "ab.png"),
        ("invoice\u202egpj.exe", "invoicegpj.exe"),  # a right-to-left override would show "exe.jpg"
        ('what?<>|*".txt', "what______.txt"),
        ("CON.txt", "_CON.txt"),
        ("trailing. . ", "trailing"),
        ("图片 1.JPG", "图片 1.JPG"),
    ],
)
def test_sanitize_filename(raw: str, expected: str) -> None:
    assert sanitize_filename(raw) == expected


def test_sanitize_filename_limits_bytes_and_keeps_extension() -> None:
    name = sanitize_filename("猫" * 300 + ".jpeg")
    assert name.endswith(".jpeg")
    assert len(name.encode()) <= 255
    assert sanitize_filename("x" * 300, max_bytes=20) == "x" * 20


# ----------------------------------------------------------------------------------------------- zips


def test_zip_members_happy_path() -> None:
    data = normal_zip(
        {"1.txt": b"one", "dir/2.txt": b"two", "dir/": b"", "__MACOSX/._1.txt": b"junk", ".DS_Store": b"junk"}
    )
    assert members(data) == {"1.txt": b"one", "dir/2.txt": b"two"}
    assert zip_names(io.BytesIO(data)) == ["1.txt", "dir/2.txt"]


@pytest.mark.parametrize(
    "name",
    [
        "../evil.txt",
        "a/../../evil.txt",
        "/etc/passwd",
        "C:/Windows/evil.txt",
        "C:evil.txt",
        "a\\..\\..\\evil.txt",
        "dir\\file.txt",
        "a\x01b.txt",
        "ok/..",
        "a/b:c",
    ],
)
def test_zip_slip_refused(name: str) -> None:
    data = raw_zip([stored("fine.txt", b"ok"), stored(name, b"pwned")])
    with pytest.raises(UnsafeName):
        members(data)
    with pytest.raises(UnsafeName):
        safe_member_name(name)


def test_safe_member_name_normalises() -> None:
    assert safe_member_name("./a//b/./c.txt") == "a/b/c.txt"


def test_refused_archive_yields_nothing() -> None:
    # The central directory is vetted before the first member comes out, so no partial import happens.
    data = raw_zip([stored("1.txt", b"ok"), stored("../2.txt", b"bad")])
    iterator = iter_zip_members(io.BytesIO(data))
    with pytest.raises(UnsafeName):
        next(iterator)


def test_zip_bomb_refused_from_its_declared_size() -> None:
    payload = deflated_zeros(GIB)
    assert len(payload) < 2 * 1024 * 1024
    data = raw_zip([RawEntry("zeros.bin", payload, GIB, 0, method=zipfile.ZIP_DEFLATED)])
    started = time.monotonic()
    with pytest.raises(TooLarge) as excinfo:
        members(data, max_member_size=100 * 1024 * 1024)
    assert excinfo.value.filename == "zeros.bin"
    with pytest.raises(TooLarge):
        members(data, max_member_size=2 * GIB, max_total_uncompressed=512 * 1024 * 1024)
    assert time.monotonic() - started < 5  # refused from the headers, nothing expanded


def test_zip_bomb_with_lying_header_does_not_expand() -> None:
    payload = deflated_zeros(GIB)
    lying = RawEntry("zeros.bin", payload, 1000, 0, method=zipfile.ZIP_DEFLATED)
    started = time.monotonic()
    with pytest.raises(IngestError) as excinfo:
        members(raw_zip([lying]), max_member_size=10_000)
    assert isinstance(excinfo.value, (TooLarge, CorruptArchive))
    assert excinfo.value.filename == "zeros.bin"
    assert time.monotonic() - started < 5


def test_actual_bytes_are_counted_even_if_header_checks_were_bypassed(monkeypatch: pytest.MonkeyPatch) -> None:
    # The header checks normally refuse this first; the reader's own count is the second line of defence.
    monkeypatch.setattr(ingest, "_vet_member", lambda *args: None)
    bomb = RawEntry("zeros.bin", deflated_zeros(GIB), GIB, 0, method=zipfile.ZIP_DEFLATED)
    started = time.monotonic()
    with pytest.raises(TooLarge, match="10000 bytes"):
        members(raw_zip([bomb]), max_member_size=10_000, max_total_uncompressed=2 * GIB)
    assert time.monotonic() - started < 5


def test_many_members_exceeding_total_refused() -> None:
    data = normal_zip({f"{n}.txt": b"x" * 1000 for n in range(1, 11)})
    with pytest.raises(TooLarge):
        members(data, max_total_uncompressed=9_999)
    assert len(members(data, max_total_uncompressed=10_000)) == 10


def test_encrypted_entry_refused() -> None:
    data = raw_zip([stored("secret.txt", b"\x00" * 12 + b"cipher", flags=0x1)])
    with pytest.raises(UnsupportedEntry, match="encrypted"):
        members(data)


def test_symlink_entry_refused() -> None:
    link = stored("link.txt", b"/etc/passwd", external_attr=(stat.S_IFLNK | 0o777) << 16)
    with pytest.raises(UnsupportedEntry, match="symbolic link"):
        members(raw_zip([link]))


def test_device_entry_refused() -> None:
    fifo = stored("pipe", b"", external_attr=(stat.S_IFIFO | 0o644) << 16)
    with pytest.raises(UnsupportedEntry):
        members(raw_zip([fifo]))


def test_too_many_entries_refused() -> None:
    data = raw_zip([stored(f"{n}.txt", b"") for n in range(1, 102)])
    with pytest.raises(TooLarge, match="101 entries"):
        members(data, max_entries=100)
    assert len(members(data, max_entries=101)) == 101


def test_oversized_central_directory_refused_before_parsing() -> None:
    # Only 50 entries, but a directory as big as 200 ordinary ones would need: refused from the end record.
    data = raw_zip([stored(f"{n:0>1000}.txt", b"") for n in range(1, 51)])
    with pytest.raises(TooLarge, match="central directory"):
        members(data, max_entries=100)
    assert len(members(data, max_entries=200)) == 50


def test_bzip2_member_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_BZIP2) as archive:
        archive.writestr("1.txt", b"a" * 1000)
    with pytest.raises(UnsupportedEntry, match="compression"):
        members(buffer.getvalue())


def test_duplicate_names_refused() -> None:
    with pytest.raises(UnsupportedEntry, match="duplicate"):
        members(raw_zip([stored("1.txt", b"a"), stored("1.txt", b"b")]))


def test_nested_archive_is_not_expanded() -> None:
    inner = normal_zip({"1.txt": b"inner"})
    assert members(normal_zip({"inner.zip": inner})) == {"inner.zip": inner}


def test_not_a_zip() -> None:
    with pytest.raises(CorruptArchive):
        members(b"PK\x03\x04 this is not really a zip")


def test_corrupt_member_data() -> None:
    bad_crc = stored("1.txt", b"hello", crc=12345)
    with pytest.raises(CorruptArchive) as excinfo:
        members(raw_zip([bad_crc]))
    assert excinfo.value.filename == "1.txt"


# --------------------------------------------------------------------------------------------- images


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def noise(width: int = 256, height: int = 256) -> Image.Image:
    rng = random.Random(7)
    return Image.frombytes("RGB", (width, height), bytes(rng.getrandbits(8) for _ in range(width * height * 3)))


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG file that claims huge dimensions: its decoder would allocate width*height bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


def test_valid_images(tmp_path: Path) -> None:
    png = encode(Image.new("L", (30, 20), 128), "PNG")
    assert check_image(png) == ImageInfo("PNG", 30, 20, "L")
    jpeg = encode(noise(64, 48), "JPEG")
    path = tmp_path / "photo.jpg"
    path.write_bytes(jpeg)
    info = check_image(path)
    assert (info.format, info.width, info.height, info.extension, info.media_type) == (
        "JPEG",
        64,
        48,
        ".jpg",
        "image/jpeg",
    )
    assert check_image(io.BytesIO(jpeg)).format == "JPEG"
    assert check_image(encode(Image.new("RGB", (5, 5)), "GIF")).format == "GIF"


@pytest.mark.parametrize(("width", "height"), [(100_000, 100_000), (10_000, 6_000)])
def test_decompression_bomb_png(width: int, height: int) -> None:
    data = png_header_only(width, height)
    assert len(data) < 200
    with pytest.raises(DecompressionBomb) as excinfo:
        check_image(data, filename="bomb.png")
    assert excinfo.value.filename == "bomb.png"
    assert isinstance(excinfo.value, ImageRejected)


def test_pillow_bomb_warning_is_an_error() -> None:
    # Between Pillow's MAX_IMAGE_PIXELS and twice that, Pillow only warns; it must still be refused.
    data = png_header_only(10_000, 10_000)
    with pytest.raises(DecompressionBomb):
        check_image(data, max_pixels=10**9)


def test_small_pixel_cap() -> None:
    with pytest.raises(DecompressionBomb):
        check_image(encode(Image.new("L", (100, 100)), "PNG"), max_pixels=9_999)


@pytest.mark.parametrize(
    "data",
    [b"hello, I am a text file", b"\x89PNG\r\n\x1a\n" + b"not really png data" * 10, b"", b"<svg></svg>"],
)
def test_not_an_image(data: bytes) -> None:
    with pytest.raises(ImageRejected) as excinfo:
        check_image(data, filename="cat.png")
    assert excinfo.value.filename == "cat.png"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_image(fmt: str) -> None:
    data = encode(noise(), fmt)
    check_image(data)
    with pytest.raises(ImageRejected, match=r"truncated|corrupt"):
        check_image(data[: len(data) * 6 // 10])


def test_unsupported_format_refused_unless_allowed() -> None:
    ppm = encode(Image.new("RGB", (4, 4)), "PPM")
    with pytest.raises(ImageRejected, match="supported format"):
        check_image(ppm)
    assert check_image(ppm, formats={"PPM"}).format == "PPM"


# -------------------------------------------------------------------------------------------- text


def test_decode_text() -> None:
    assert decode_text("\ufeff你好".encode(), "a.txt") == "你好"
    gbk = "猫\n狗".encode("gbk")
    with pytest.raises(BadText):
        decode_text(gbk, "a.txt")
    assert decode_text(gbk, "a.txt", ("utf-8", "gb18030")) == "猫\n狗"
    with pytest.raises(BadText):
        decode_text("hi".encode("utf-16"), "a.txt", ("utf-8", "gb18030"))


# ---------------------------------------------------------------------------------------- sequences


def test_sequence_complete() -> None:
    result = check_sequence(["2.txt", "1.txt", "3.txt"], "text")
    assert result.ok and not result.interrupted
    assert (result.upload_num, result.legal_num, result.legal) == (3, 3, ["1.txt", "2.txt", "3.txt"])


def test_sequence_interrupted_reports_counts() -> None:
    result = check_sequence(["1.jpg", "2.jpg", "4.jpg", "5.jpg", "cover.jpg"], "image")
    assert result.interrupted and not result.ok
    assert (result.upload_num, result.legal_num, result.legal) == (5, 2, ["1.jpg", "2.jpg"])
    assert result.wrong_type == []


def test_sequence_not_starting_at_one() -> None:
    result = check_sequence(["2.txt", "3.txt"], "text")
    assert (result.upload_num, result.legal_num, result.legal) == (2, 0, [])


def test_sequence_quirks() -> None:
    result = check_sequence(["1.txt", "01.txt", "2.TXT", "a/3.txt", "b/3.txt"], "text")
    assert result.legal == ["1.txt", "2.TXT", "a/3.txt"]
    assert (result.upload_num, result.legal_num) == (5, 3)


def test_sequence_wrong_type() -> None:
    result = check_sequence(["1.txt", "2.jpg", "3.png"], "text")
    assert result.wrong_type == ["2.jpg", "3.png"]
    assert not result.ok


def test_sequence_bad_data_type() -> None:
    with pytest.raises(BadDataType) as excinfo:
        check_sequence(["1.txt"], "video")
    assert excinfo.value.filename == "data_type"


def test_sequence_from_zip() -> None:
    data = normal_zip({"1.txt": b"a", "2.txt": b"b", "4.txt": b"d"})
    result = check_sequence(zip_names(io.BytesIO(data)), "text")
    assert (result.upload_num, result.legal_num) == (3, 2)
