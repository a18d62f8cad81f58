"""Exports of a dataset into a temp file, from the database page by page.

Image datasets: COCO JSON, Pascal VOC zip and YOLO zip (with the images, unless `images=0`), CSV, and
JSON Lines. Q&A datasets (001) and text archives (003): JSON Lines. The writers of `export_formats.py` are
synchronous and pull their input from an iterator: they run in a worker thread whose iterator fetches each
page of rows from the event loop (`anyio.from_thread.run`), so memory holds one page, never the dataset.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import anyio
import anyio.from_thread
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.errors import InvalidRequest

from .export_formats import (
    EXPORT_FORMATS,
    Box,
    ExportError,
    ExportImage,
    write_coco,
    write_csv,
    write_jsonl,
    write_voc_zip,
    write_yolo_zip,
)
from .labels import LabelType
from .models import Dataset
from .repository import DatasetRepository
from .schemas import record_line
from .storage import ObjectStore

PAGE = 500
CHUNK = 1024 * 1024
FORMATS_BY_KIND = {"image": ("coco", "voc", "yolo", "csv", "jsonl"), "qa": ("jsonl",), "text": ("jsonl",)}


@dataclass(frozen=True)
class ExportFile:
    path: Path
    media_type: str
    filename: str

    def open_stream(self) -> tuple[AsyncIterator[bytes], int]:
        """The file's bytes and size. The name is removed at once: the open file keeps the data until
        the response is sent, and nothing is left behind whether the client reads it all or goes away."""
        fileobj = open(self.path, "rb")  # noqa: SIM115 - closed by the generator
        size = os.fstat(fileobj.fileno()).st_size
        self.path.unlink()

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while chunk := await anyio.to_thread.run_sync(fileobj.read, CHUNK):
                    yield chunk
            finally:
                fileobj.close()

        return chunks(), size

    @property
    def content_disposition(self) -> str:
        quoted = quote(self.filename)
        return (
            f"attachment; filename*=utf-8''{quoted}"
            if quoted != self.filename
            else f'attachment; filename="{self.filename}"'
        )


def check_format(dataset: Dataset, fmt: str) -> str:
    fmt = fmt.strip().lower()
    allowed = FORMATS_BY_KIND[dataset.kind]
    if fmt not in allowed:
        raise InvalidRequest(
            f"invalid request: format must be one of {', '.join(allowed)} for a {dataset.kind} dataset, not {fmt!r}"
        )
    return fmt


class _Pages:
    """Fetches pages of a dataset's rows on the event loop, for iterators running in a worker thread."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], dataset_id: int) -> None:
        self.sessionmaker = sessionmaker
        self.dataset_id = dataset_id

    async def _images(self, after: int) -> list[tuple[int, ExportImage, str, dict[str, Any]]]:
        async with self.sessionmaker() as session:
            page = await DatasetRepository(session).image_page(self.dataset_id, after, PAGE)
        out = []
        for image, label in page:
            boxes = tuple(Box(b["label"], b["xmin"], b["ymin"], b["xmax"], b["ymax"]) for b in image.boxes or ())
            line = {
                "image_id": image.id,
                "file_name": image.file_name,
                "width": image.width,
                "height": image.height,
                "label": label,
                "boxes": image.boxes,
            }
            out.append(
                (
                    image.id,
                    ExportImage(image.file_name, image.width, image.height, boxes, label),
                    image.object_key,
                    line,
                )
            )
        return out

    async def _qa(self, after: int) -> list[tuple[int, dict[str, Any]]]:
        async with self.sessionmaker() as session:
            page = await DatasetRepository(session).qa_page(self.dataset_id, after, PAGE)
        return [(record.id, record_line(record)) for record in page]

    async def _texts(self, after: int) -> list[tuple[int, dict[str, Any]]]:
        async with self.sessionmaker() as session:
            page = await DatasetRepository(session).text_page(self.dataset_id, after, PAGE)
        return [(item.id, {"text_id": item.id, "filename": item.file_name, "text": item.content}) for item in page]

    def _iterate(self, fetch: Callable[[int], Any]) -> Iterator[Any]:
        after = 0
        while page := anyio.from_thread.run(fetch, after):
            yield from page
            after = page[-1][0]

    def images(self) -> Iterator[tuple[int, ExportImage, str, dict[str, Any]]]:
        return self._iterate(self._images)

    def lines(self, kind: str) -> Iterator[dict[str, Any]]:
        if kind == "image":
            return (line for _, _, _, line in self.images())
        return (line for _, line in self._iterate(self._qa if kind == "qa" else self._texts))


async def build(
    dataset: Dataset,
    fmt: str,
    with_images: bool,
    categories: list[LabelType],
    sessionmaker: async_sessionmaker[AsyncSession],
    store: ObjectStore,
    scratch: Path,
) -> ExportFile:
    spec = EXPORT_FORMATS[fmt]
    pages = _Pages(sessionmaker, dataset.id)
    fd, name = tempfile.mkstemp(dir=scratch, prefix="export-", suffix=spec.extension)
    path = Path(name)

    def write() -> None:
        with os.fdopen(fd, "wb") as out:
            if fmt == "jsonl":
                write_jsonl(pages.lines(dataset.kind), out)
                return
            keys: dict[str, str] = {}

            def images() -> Iterator[ExportImage]:
                for _, image, key, _ in pages.images():
                    if with_images and fmt in ("voc", "yolo"):
                        keys[image.file_name] = key
                    yield image

            def source(image: ExportImage) -> BinaryIO:
                return store.open(keys.pop(image.file_name))

            image_source = source if with_images else None
            if fmt == "coco":
                write_coco(
                    images(),
                    categories,
                    out,
                    info={"description": f"Labelhive dataset {dataset.name}", "dataset_id": dataset.id},
                )
            elif fmt == "voc":
                write_voc_zip(images(), out, image_source)
            elif fmt == "yolo":
                write_yolo_zip(images(), categories, out, image_source)
            else:
                write_csv(images(), out)

    try:
        await anyio.to_thread.run_sync(write)
    except ExportError as exc:
        path.unlink(missing_ok=True)
        raise InvalidRequest(f"cannot export as {fmt}: {exc}") from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in dataset.name)[:80] or "dataset"
    return ExportFile(path, spec.media_type, f"{safe}-{dataset.id}{spec.extension}")
