"""Dataset exporters: COCO JSON, Pascal VOC zip, YOLO zip, CSV, and JSON Lines.

Every writer takes an iterable (a database cursor can feed it row by row) and writes to a binary file
object, keeping at most one image's data in memory; the text formats also come as line generators for
streaming responses. Box coordinates are absolute pixels, ``xmin < xmax <= width`` (VOC's convention, as
stored), so COCO's width is ``xmax - xmin``.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from .ingest import sanitize_filename, stem_of
from .labels import LabelType
from .voc import VocAnnotation, VocObject, write_voc


class ExportError(ValueError):
    """The data cannot be exported as asked (unknown label, box outside its image, clashing names)."""


@dataclass(frozen=True)
class Box:
    label: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float


@dataclass(frozen=True)
class ExportImage:
    file_name: str
    width: int
    height: int
    boxes: Sequence[Box] = ()
    label: str | None = None  # classification label, for datasets without boxes


@dataclass(frozen=True)
class ExportSummary:
    images: int
    annotations: int


@dataclass(frozen=True)
class ExportFormat:
    media_type: str
    extension: str


EXPORT_FORMATS: dict[str, ExportFormat] = {
    "coco": ExportFormat("application/json", ".json"),
    "voc": ExportFormat("application/zip", ".zip"),
    "yolo": ExportFormat("application/zip", ".zip"),
    "csv": ExportFormat("text/csv; charset=utf-8", ".csv"),
    "jsonl": ExportFormat("application/x-ndjson", ".jsonl"),
}

# Returns the image's bytes or a readable binary file (closed by the writer), or None to leave it out.
ImageSource = Callable[[ExportImage], bytes | BinaryIO | None]

CSV_HEADER = ("file_name", "width", "height", "label", "xmin", "ymin", "xmax", "ymax")


def categories_of(images: Iterable[ExportImage]) -> list[LabelType]:
    """Categories numbered 1.. in name order, for callers that have no label table at hand."""
    names: set[str] = set()
    for image in images:
        names.update(box.label for box in image.boxes)
        if image.label:
            names.add(image.label)
    return [LabelType(number, name) for number, name in enumerate(sorted(names), 1)]


def _checked(image: ExportImage) -> ExportImage:
    if image.width <= 0 or image.height <= 0:
        raise ExportError(f"{image.file_name}: image size {image.width}x{image.height} is not positive")
    for box in image.boxes:
        if not (0 <= box.xmin < box.xmax <= image.width and 0 <= box.ymin < box.ymax <= image.height):
            raise ExportError(f"{image.file_name}: box {box} is empty or outside the image")
    return image


def _category_index(categories: Sequence[LabelType]) -> dict[str, LabelType]:
    return {category.name: category for category in categories}


def _lookup(index: Mapping[str, LabelType], label: str, file_name: str) -> LabelType:
    try:
        return index[label]
    except KeyError:
        raise ExportError(f"{file_name}: label {label!r} is not one of the dataset's categories") from None


# ----------------------------------------------------------------------------------------------- COCO


def write_coco(
    images: Iterable[ExportImage],
    categories: Sequence[LabelType],
    out: BinaryIO,
    info: Mapping[str, Any] | None = None,
) -> ExportSummary:
    """Write COCO detection JSON. Annotations are spooled to a temp file while the image list is written,
    so the input is read once and never held in memory."""
    index = _category_index(categories)
    header = {
        "info": dict(info or {"description": "Labelhive export"}),
        "licenses": [],
        "categories": [{"id": c.id, "name": c.name, "supercategory": ""} for c in categories],
    }
    out.write(_dumps(header)[:-1].encode() + b', "images": [')
    image_count = annotation_count = 0
    with tempfile.TemporaryFile() as spool:
        for image in images:
            _checked(image)
            image_count += 1
            record = {"id": image_count, "file_name": image.file_name, "width": image.width, "height": image.height}
            out.write((", " if image_count > 1 else "").encode() + _dumps(record).encode())
            for box in image.boxes:
                annotation_count += 1
                category = _lookup(index, box.label, image.file_name)
                annotation = _coco_annotation(annotation_count, image_count, category.id, box)
                spool.write((", " if annotation_count > 1 else "").encode() + _dumps(annotation).encode())
        out.write(b'], "annotations": [')
        spool.seek(0)
        shutil.copyfileobj(spool, out)
    out.write(b"]}\n")
    return ExportSummary(image_count, annotation_count)


def _coco_annotation(annotation_id: int, image_id: int, category_id: int, box: Box) -> dict[str, Any]:
    width, height = box.xmax - box.xmin, box.ymax - box.ymin
    return {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": category_id,
        "bbox": [box.xmin, box.ymin, width, height],
        "area": width * height,
        "iscrowd": 0,
        # The box as a polygon: tools that evaluate or draw segmentation then work on box datasets too.
        "segmentation": [[box.xmin, box.ymin, box.xmax, box.ymin, box.xmax, box.ymax, box.xmin, box.ymax]],
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


# ---------------------------------------------------------------------------------------- zip formats


def write_voc_zip(
    images: Iterable[ExportImage],
    out: BinaryIO,
    image_source: ImageSource | None = None,
    depth: int = 3,
) -> ExportSummary:
    """Write ``Annotations/<stem>.xml`` per image (and ``JPEGImages/<name>`` when ``image_source`` is given)."""
    image_count = annotation_count = 0
    with _ExportZip(out, image_source) as archive:
        for image in images:
            _checked(image)
            name = archive.add_image(image, "JPEGImages")
            objects = tuple(VocObject(b.label, b.xmin, b.ymin, b.xmax, b.ymax) for b in image.boxes)
            annotation = VocAnnotation(
                filename=name, width=image.width, height=image.height, depth=depth, objects=objects
            )
            archive.write_text(f"Annotations/{stem_of(name)}.xml", write_voc(annotation))
            image_count += 1
            annotation_count += len(objects)
    return ExportSummary(image_count, annotation_count)


def write_yolo_zip(
    images: Iterable[ExportImage],
    categories: Sequence[LabelType],
    out: BinaryIO,
    image_source: ImageSource | None = None,
) -> ExportSummary:
    """Write ``classes.txt`` and ``labels/<stem>.txt`` per image (``class cx cy w h``, normalised to 0..1,
    class = line number in ``classes.txt`` from 0); images go to ``images/`` when ``image_source`` is given."""
    positions = {category.name: position for position, category in enumerate(categories)}
    image_count = annotation_count = 0
    with _ExportZip(out, image_source) as archive:
        archive.write_text("classes.txt", "".join(f"{c.name}\n" for c in categories).encode())
        for image in images:
            _checked(image)
            name = archive.add_image(image, "images")
            lines = [_yolo_line(image, box, positions) for box in image.boxes]
            # An empty file (not a missing one) marks an image with no objects, as YOLO trainers expect.
            archive.write_text(f"labels/{stem_of(name)}.txt", "".join(lines).encode())
            image_count += 1
            annotation_count += len(lines)
    return ExportSummary(image_count, annotation_count)


def _yolo_line(image: ExportImage, box: Box, positions: Mapping[str, int]) -> str:
    if box.label not in positions:
        raise ExportError(f"{image.file_name}: label {box.label!r} is not one of the dataset's categories")
    cx = (box.xmin + box.xmax) / 2 / image.width
    cy = (box.ymin + box.ymax) / 2 / image.height
    w = (box.xmax - box.xmin) / image.width
    h = (box.ymax - box.ymin) / image.height
    return f"{positions[box.label]} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n"


class _ExportZip:
    """A zip being written: safe, unique entry names, and images streamed in without loading them whole."""

    def __init__(self, out: BinaryIO, image_source: ImageSource | None) -> None:
        self._zip = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED)
        self._image_source = image_source
        self._stems: set[str] = set()

    def __enter__(self) -> _ExportZip:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._zip.close()

    def write_text(self, name: str, data: bytes) -> None:
        self._zip.writestr(name, data)

    def add_image(self, image: ExportImage, folder: str) -> str:
        """Reserve the image's name (stems must be unique: they name the annotation files) and copy
        its bytes in when there is a source; returns the name used."""
        name = sanitize_filename(image.file_name)
        stem = stem_of(name)
        if stem in self._stems:
            raise ExportError(f"{image.file_name}: another image has the same name apart from the extension")
        self._stems.add(stem)
        data = self._image_source(image) if self._image_source else None
        if data is None:
            return name
        # Images are already compressed: storing them saves CPU and loses nothing.
        entry = f"{folder}/{name}"
        if isinstance(data, bytes):
            self._zip.writestr(entry, data, compress_type=zipfile.ZIP_STORED)
            return name
        info = zipfile.ZipInfo(entry)
        info.compress_type = zipfile.ZIP_STORED
        with data, self._zip.open(info, "w") as target:
            shutil.copyfileobj(data, target)
        return name


# ------------------------------------------------------------------------------------- text formats


def iter_csv(images: Iterable[ExportImage]) -> Iterator[str]:
    """CSV lines: a header, then one row per box, or one row per image without boxes (coordinates empty,
    label = the classification label if any)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def row(values: Sequence[object]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield row(CSV_HEADER)
    for image in images:
        _checked(image)
        base = (image.file_name, image.width, image.height)
        if not image.boxes:
            yield row((*base, image.label or "", "", "", "", ""))
        for box in image.boxes:
            yield row((*base, box.label, _number(box.xmin), _number(box.ymin), _number(box.xmax), _number(box.ymax)))


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def iter_jsonl(records: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """One JSON object per line (UTF-8 text kept readable, not escaped)."""
    for record in records:
        yield _dumps(dict(record)) + "\n"


def write_lines(lines: Iterable[str], out: BinaryIO) -> int:
    """Write a line generator (``iter_csv``, ``iter_jsonl``) to a binary file; returns the line count."""
    count = 0
    for line in lines:
        out.write(line.encode())
        count += 1
    return count


def write_csv(images: Iterable[ExportImage], out: BinaryIO) -> int:
    return write_lines(iter_csv(images), out) - 1


def write_jsonl(records: Iterable[Mapping[str, Any]], out: BinaryIO) -> int:
    return write_lines(iter_jsonl(records), out)
