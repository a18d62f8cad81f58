"""Files the dataset tests upload, all made here: images, VOC XML, archives, and hostile files."""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from pathlib import Path

from PIL import Image

from shared.launcher import ROOT


def image_bytes(width: int = 64, height: int = 48, fmt: str = "JPEG") -> bytes:
    """A unique image (random pixels), so that no two tests share stored bytes by accident."""
    image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def jpeg(width: int = 64, height: int = 48) -> bytes:
    return image_bytes(width, height, "JPEG")


def png(width: int = 64, height: int = 48) -> bytes:
    return image_bytes(width, height, "PNG")


def voc_xml(filename: str, width: int, height: int, objects: list[tuple[str, int, int, int, int]]) -> bytes:
    parts = [
        f"<annotation><folder>test</folder><filename>{filename}</filename>",
        f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size><segmented>0</segmented>",
    ]
    for name, xmin, ymin, xmax, ymax in objects:
        parts.append(
            f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
            f"<difficult>0</difficult><bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax>"
            f"<ymax>{ymax}</ymax></bndbox></object>"
        )
    parts.append("</annotation>")
    return "".join(parts).encode()


def zip_of(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def mp4_bytes(size: int) -> bytes:
    """Something that starts like an MP4 file (an `ftyp` box), then random bytes."""
    head = struct.pack(">I", 24) + b"ftypisom" + struct.pack(">I", 512) + b"isommp41"
    return head + os.urandom(size - len(head))


# --------------------------------------------------------------------------------------------- hostile


def zip_slip() -> bytes:
    return zip_of({"1.txt": b"fine", "../../evil.txt": b"escaped"})


def zip_bomb(expanded: int = 100 * 1024 * 1024) -> bytes:
    """One member of zeros: ~100 KiB that expands to `expanded` bytes."""
    out = io.BytesIO()
    block = b"\0" * (1024 * 1024)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive, archive.open("1.txt", "w") as member:
        for _ in range(expanded // len(block)):
            member.write(block)
    return out.getvalue()


def billion_laughs() -> bytes:
    entities = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
    ]
    return (
        f'<?xml version="1.0"?><!DOCTYPE annotation [{"".join(entities)}]>'
        "<annotation><filename>&lol9;</filename></annotation>"
    ).encode()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def decompression_bomb(side: int = 30_000) -> bytes:
    """A PNG of a few hundred bytes whose header claims side x side pixels."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 1024))
        + _png_chunk(b"IEND", b"")
    )


def text_as_png() -> bytes:
    return b"this is plain text pretending to be a PNG image\n" * 4


def truncated_jpeg() -> bytes:
    data = jpeg(128, 96)
    return data[: len(data) // 2]


# ----------------------------------------------------------------------------------------------- traces


def objects_dir(namespace: str) -> Path:
    return ROOT / "var" / f"test-data-{namespace}" / "objects"


def stored_objects(namespace: str) -> set[str]:
    """The object store's files (temp files included: none may be left behind)."""
    root = objects_dir(namespace)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()
