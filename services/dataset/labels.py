"""Label vocabularies and the label-related inputs of 000's dataset module.

- ``label_type`` form field: ``1:cat,2:dog,3:panda`` (the document's own examples also use the full-width
  ``：`` and ``，`` of a Chinese keyboard, so both are accepted everywhere).
- Label files (``upload_file``): one label per line as ``id:name``, ``id name`` or a bare ``name``; Caffe
  ``labelmap.prototxt`` files (``item { name: ... label: ... }``) too, since the document uploads one.
- Mapping tables (``table_site``): one ``image-file label`` pair per line.
- ``status`` of ``upload_image``: ``add_label``, ``appoint_table``, ``default`` or a label ``N:name``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from .ingest import IngestError, decode_text, sanitize_filename

MAX_LABELS = 10_000
MAX_LABEL_CHARS = 64
MAX_TABLE_ROWS = 1_000_000
# Chinese Windows editors still save GBK by default; GB18030 is its superset and decodes it.
TEXT_ENCODINGS = ("utf-8", "gb18030")

_FULL_WIDTH = str.maketrans({"：": ":", "，": ",", "；": ";", "\u3000": " "})
_ID_NAME = re.compile(r"(?P<id>\d+)(?:\s*:\s*|\s+)(?P<name>\S.*)", re.ASCII)
_PROTOTXT_ITEM = re.compile(r"item\s*\{(?P<body>[^{}]*)\}", re.DOTALL)
_PROTOTXT_FIELD = re.compile(r"(?P<key>\w+)\s*:\s*(?:\"(?P<quoted>[^\"]*)\"|(?P<bare>\S+))")
_IMAGE_NAME = re.compile(
    r"(?P<name>.+?\.(?:jpe?g|png|bmp|gif|webp|tiff?|xml))(?:\s*[,:;]\s*|\s+)(?P<value>\S.*)", re.IGNORECASE
)
_TABLE_HEADERS = {"filename", "file_name", "file", "image", "image_name", "name", "图片", "文件名", "图片名"}


class LabelError(IngestError):
    """A label list, label file, mapping table or status that cannot be used."""


@dataclass(frozen=True)
class LabelType:
    id: int
    name: str

    def __str__(self) -> str:
        return f"{self.id}:{self.name}"


# ----------------------------------------------------------------------------------- label lists


def parse_label_types(text: str, source: str = "label_type") -> list[LabelType]:
    """Parse the ``label_type`` form field: entries separated by commas, semicolons or new lines."""
    entries = re.split(r"[,;\n]", _normalise(text))
    return _build_labels(((entry, f"entry {n}") for n, entry in enumerate(entries, 1)), source)


def parse_label_file(data: bytes | str, filename: str = "label_file") -> list[LabelType]:
    """Parse an uploaded label file: one label per line, or a Caffe labelmap prototxt."""
    text = decode_text(data, filename, TEXT_ENCODINGS) if isinstance(data, bytes) else data
    if _PROTOTXT_ITEM.search(text):
        return _parse_prototxt(text, filename)
    lines = _normalise(text).splitlines()
    return _build_labels(((line, f"line {n}") for n, line in enumerate(lines, 1)), filename)


def parse_label(text: str, source: str = "new_label") -> LabelType:
    """Parse exactly one ``N:name`` label (``new_label`` of ``add_label``, a labelled upload's status)."""
    match = _ID_NAME.fullmatch(_normalise(text).strip())
    if match is None:
        raise LabelError(source, f"expected 'id:name', got {text!r}")
    return LabelType(int(match["id"]), _check_name(match["name"], source, "label"))


def merge_labels(existing: Sequence[LabelType], new: Iterable[LabelType], source: str = "new_label") -> list[LabelType]:
    """Existing labels plus new ones; re-adding an identical label is a no-op, a clash is an error."""
    merged = list(existing)
    for label in new:
        if label in merged:
            continue
        _check_unique(merged, label, source, "label")
        merged.append(label)
    return merged


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFC", text).translate(_FULL_WIDTH).lstrip("\ufeff")


def _build_labels(entries: Iterable[tuple[str, str]], source: str) -> list[LabelType]:
    explicit: list[LabelType] = []
    bare: list[tuple[str, str]] = []
    for raw, where in entries:
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        match = _ID_NAME.fullmatch(entry)
        if match:
            label = LabelType(int(match["id"]), _check_name(match["name"], source, where))
            _check_unique(explicit, label, source, where)
            explicit.append(label)
        else:
            bare.append((_check_name(entry, source, where), where))
    # Bare names are numbered after the explicit ids, in file order, so adding ids later keeps them stable.
    labels = explicit
    next_id = max((label.id for label in explicit), default=0) + 1
    for name, where in bare:
        label = LabelType(next_id, name)
        _check_unique(labels, label, source, where)
        labels.append(label)
        next_id += 1
    if not labels:
        raise LabelError(source, "no labels given")
    if len(labels) > MAX_LABELS:
        raise LabelError(source, f"more than {MAX_LABELS} labels")
    return labels


def _parse_prototxt(text: str, filename: str) -> list[LabelType]:
    entries: list[tuple[str, str]] = []
    for n, item in enumerate(_PROTOTXT_ITEM.finditer(text), 1):
        fields = {
            m["key"]: m["quoted"] if m["quoted"] is not None else m["bare"]
            for m in _PROTOTXT_FIELD.finditer(item["body"])
        }
        name = fields.get("display_name") or fields.get("name") or ""
        label_id = fields.get("label", "")
        entries.append((f"{label_id}:{name}" if label_id else name, f"item {n}"))
    return _build_labels(entries, filename)


def _check_name(name: str, source: str, where: str) -> str:
    name = name.strip()
    if not name:
        raise LabelError(source, f"{where}: empty label name")
    if len(name) > MAX_LABEL_CHARS:
        raise LabelError(source, f"{where}: label name longer than {MAX_LABEL_CHARS} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise LabelError(source, f"{where}: control characters in label name")
    if ":" in name:  # would make 'N:name' statuses ambiguous; also catches a lone "3:" with no name
        raise LabelError(source, f"{where}: expected 'id:name' or a name without ':', got {name!r}")
    return name


def _check_unique(labels: Sequence[LabelType], label: LabelType, source: str, where: str) -> None:
    for other in labels:
        if other.id == label.id:
            raise LabelError(source, f"{where}: id {label.id} is used by both {other.name!r} and {label.name!r}")
        if other.name == label.name:
            raise LabelError(source, f"{where}: label {label.name!r} is given twice ({other.id} and {label.id})")


def resolve_label(value: str, labels: Sequence[LabelType], source: str = "label") -> LabelType:
    """Find the dataset label a client means by ``N:name``, ``name`` or ``N``."""
    value = _normalise(value).strip()
    match = _ID_NAME.fullmatch(value)
    for label in labels:
        if match and label.id == int(match["id"]) and label.name == match["name"].strip():
            return label
    for label in labels:
        if label.name == value:
            return label
    if value.isascii() and value.isdigit():
        for label in labels:
            if label.id == int(value):
                return label
    known = ", ".join(str(label) for label in labels[:20])
    raise LabelError(source, f"unknown label {value!r} (known: {known})")


# ------------------------------------------------------------------------------------ mapping tables


@dataclass(frozen=True)
class TableRow:
    file_name: str  # sanitised the same way as uploaded file names, so the two compare equal
    value: str  # a label ("1:dog", "dog", "1") or, for detection uploads, an annotation file name
    line: int


def parse_mapping_table(data: bytes | str, filename: str = "table_site") -> list[TableRow]:
    """Parse a mapping table of ``image-name label`` lines.

    Separators may be a tab, comma, colon, semicolon or spaces (full-width forms included); when the image
    name has an image extension the split happens right after it, so names with spaces or colons and
    labels like ``1:dog`` both survive. A header line (``filename,label``) and ``#`` comments are skipped.
    """
    text = decode_text(data, filename, TEXT_ENCODINGS) if isinstance(data, bytes) else data
    rows: list[TableRow] = []
    seen: dict[str, TableRow] = {}
    for number, line in enumerate(_normalise(text).splitlines(), 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        name, value = _split_table_line(entry, filename, number)
        if not rows and name.lower() in _TABLE_HEADERS:
            continue
        row = TableRow(sanitize_filename(name), value, number)
        previous = seen.get(row.file_name)
        if previous is not None:
            if previous.value != row.value:
                raise LabelError(
                    filename,
                    f"line {number}: {row.file_name!r} already mapped to {previous.value!r} on line {previous.line}",
                )
            continue
        seen[row.file_name] = row
        rows.append(row)
        if len(rows) > MAX_TABLE_ROWS:
            raise LabelError(filename, f"more than {MAX_TABLE_ROWS} rows")
    if not rows:
        raise LabelError(filename, "the mapping table has no rows")
    return rows


def _split_table_line(entry: str, filename: str, number: int) -> tuple[str, str]:
    match = _IMAGE_NAME.fullmatch(entry)
    if match:
        return match["name"].strip(), match["value"].strip()
    for separator in ("\t", ",", ";", " ", ":"):
        name, found, value = entry.partition(separator)
        if found and name.strip() and value.strip():
            return name.strip(), value.strip()
    raise LabelError(filename, f"line {number}: expected 'image-name label', got {entry!r}")


# ------------------------------------------------------------------------------------ upload status


class StatusKind(StrEnum):
    ADD_LABEL = "add_label"
    APPOINT_TABLE = "appoint_table"
    DEFAULT = "default"  # unlabelled upload
    LABEL = "label"  # every uploaded image gets ``label``
    NONE = "none"  # no status field: 000's detection upload of images with their VOC XML


@dataclass(frozen=True)
class UploadStatus:
    kind: StatusKind
    label: LabelType | None = None


def parse_upload_status(value: str | None) -> UploadStatus:
    if value is None or not value.strip():
        return UploadStatus(StatusKind.NONE)
    keyword = value.strip().lower()
    for kind in (StatusKind.ADD_LABEL, StatusKind.APPOINT_TABLE, StatusKind.DEFAULT):
        if keyword == kind.value:
            return UploadStatus(kind)
    try:
        return UploadStatus(StatusKind.LABEL, parse_label(value, "status"))
    except LabelError:
        raise LabelError("status", f"expected add_label, appoint_table, default or 'id:label', got {value!r}") from None


def iter_label_lines(labels: Iterable[LabelType]) -> Iterator[str]:
    """Label file lines in the ``id:name`` form that ``parse_label_file`` reads back."""
    for label in labels:
        yield f"{label}\n"
