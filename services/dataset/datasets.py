"""Document 000's image datasets: creation with a label vocabulary, and image uploads.

`data_type` (the document lists the kinds but not their codes; the numbering follows the order the document
names them in, and the names are accepted too). The codes are ours, not the document's, so they only describe
a dataset: both upload routes take any dataset (000's examples create one with `'1'` and use both), and an
unknown code is kept as sent. Only a face dataset does more: its labelled images are enrolled.

    1  classification  分类      images with one label each       POST /data_module/upload_image/<name>
    2  face            人脸识别  the same; labelled images are enrolled in the face service under the
                                 collection `dataset-<id>`, target id = the label's name
    3  detection       检测      images with Pascal VOC boxes      POST /data_module/upload_images/<name>
    4  segmentation    分割      the same

`status` (both upload routes): `add_label` with `new_label` (`1:cat`, or several `1:cat,2:dog`), `default`
(unlabelled images), `appoint_table` (a `table_site` mapping each image to its label, or for detection to
its XML file), `N:label` (upload_image: every image gets that label) or none (upload_images: images with
their VOC XML, paired by file name). Labels in statuses, tables and XML must be the dataset's.

An upload is checked whole before anything is kept: every image is decoded (size, pixel and format caps),
every XML parsed safely and matched to its image, every label resolved against the dataset's vocabulary,
every name checked against the dataset's files. Only then are the bytes stored, and the rows written in
the request's one transaction, under the dataset's row lock (where the label and name checks run again).
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from sqlalchemy.exc import IntegrityError
from starlette.datastructures import FormData, UploadFile

from shared.errors import InvalidRequest, NotFound

from .errors import DatasetExists, rejected
from .forms import UploadContext, files_of, one_file, read_small, text_of
from .ingest import ImageInfo, IngestError, TooLarge, check_image, sanitize_filename
from .labels import (
    LabelType,
    StatusKind,
    TableRow,
    UploadStatus,
    merge_labels,
    parse_label_file,
    parse_label_types,
    parse_mapping_table,
    parse_upload_status,
    resolve_label,
)
from .models import Dataset, Label
from .repository import DatasetRepository
from .settings import DatasetSettings
from .voc import VocAnnotation, VocError, pair_by_stem, parse_voc

DATA_TYPES = {"1": "classification", "2": "face", "3": "detection", "4": "segmentation"}
_DATA_TYPE_NAMES = {
    **{name: name for name in DATA_TYPES.values()},
    "分类": "classification",
    "人脸识别": "face",
    "人脸": "face",
    "检测": "detection",
    "分割": "segmentation",
}
MAX_NAME_CHARS = 128
MAX_DATA_TYPE_CHARS = 32
IMAGE_FIELD, TABLE_FIELD, XML_FIELD = "upload_image_site", "table_site", "label_file"


def face_collection(dataset_id: int) -> str:
    return f"dataset-{dataset_id}"


def parse_data_type(value: str | None) -> str:
    key = (value or "").strip()
    if not key:
        raise InvalidRequest("data_type is required")
    if len(key) > MAX_DATA_TYPE_CHARS or any(unicodedata.category(ch).startswith("C") for ch in key):
        raise InvalidRequest(f"data_type is at most {MAX_DATA_TYPE_CHARS} printable characters")
    return DATA_TYPES.get(key) or _DATA_TYPE_NAMES.get(key.lower()) or key


def check_dataset_name(value: str | None, field_name: str = "name") -> str:
    name = unicodedata.normalize("NFC", (value or "").strip())
    if not name:
        raise InvalidRequest(f"{field_name} is required")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidRequest(f"{field_name} is longer than {MAX_NAME_CHARS} characters")
    # The name is a URL path segment of the upload routes.
    if "/" in name or "\\" in name or any(unicodedata.category(ch).startswith("C") for ch in name):
        raise InvalidRequest(f"{field_name} must not contain slashes or control characters")
    return name


def _label_types(labels: Sequence[Label]) -> list[LabelType]:
    return [LabelType(label.number, label.name) for label in labels]


# ------------------------------------------------------------------------------------------ creation


async def labels_from_form(form: FormData, settings: DatasetSettings) -> list[LabelType]:
    """`label_type` or `upload_file`: exactly one of the two (000)."""
    label_type = text_of(form, "label_type")
    upload = one_file(form, "upload_file", required=False)
    if label_type is not None and not label_type.strip():
        label_type = None
    if (label_type is None) == (upload is None):
        raise InvalidRequest("give exactly one of label_type and upload_file")
    try:
        if label_type is not None:
            return parse_label_types(label_type, "label_type")
        assert upload is not None
        name = sanitize_filename(upload.filename or "upload_file")
        return parse_label_file(await read_small(upload, settings.max_label_file_bytes, name), name)
    except IngestError as exc:
        raise rejected(exc) from None


async def create_dataset(
    repo: DatasetRepository, owner_id: int, name: str, data_type: str, description: str, labels: Sequence[LabelType]
) -> Dataset:
    if await repo.image_dataset_by_name(owner_id, name) is not None:
        raise DatasetExists(f"数据集已存在: {name}")
    dataset = Dataset(
        owner_id=owner_id, kind="image", document="000", name=name, data_type=data_type, description=description
    )
    try:
        await repo.add(dataset)
    except IntegrityError:  # created by a concurrent request in the meantime
        raise DatasetExists(f"数据集已存在: {name}") from None
    await repo.add_labels(dataset.id, ((label.id, label.name) for label in labels))
    return dataset


# -------------------------------------------------------------------------------------------- checks


@dataclass
class CheckedImage:
    upload: UploadFile
    file_name: str
    info: ImageInfo
    size: int
    label: str | None = None  # as the client wrote it (status or table), resolved in the transaction
    label_source: str = ""
    annotation: VocAnnotation | None = None
    annotation_name: str = ""


@dataclass
class UploadPlan:
    """A checked upload, waiting for the dataset's row lock to be written."""

    status: UploadStatus
    images: list[CheckedImage] = field(default_factory=list)
    new_labels: list[LabelType] = field(default_factory=list)


async def check_images(
    uploads: Sequence[UploadFile], settings: DatasetSettings, slots: asyncio.Semaphore
) -> list[CheckedImage]:
    checked: list[CheckedImage] = []
    seen: set[str] = set()
    for upload in uploads:
        name = sanitize_filename(upload.filename or "image")
        if name in seen:
            raise InvalidRequest(f"{name}: the same file name is uploaded twice")
        seen.add(name)
        size = upload.size or 0
        if size > settings.max_image_bytes:
            raise rejected(_too_large(name, settings.max_image_bytes))
        info = await decode(upload, name, settings, slots)
        checked.append(CheckedImage(upload, name, info, size))
    return checked


async def decode(upload: UploadFile, name: str, settings: DatasetSettings, slots: asyncio.Semaphore) -> ImageInfo:
    def run() -> ImageInfo:
        upload.file.seek(0)
        return check_image(upload.file, settings.max_image_pixels, filename=name)

    async with slots:
        try:
            return await anyio.to_thread.run_sync(run)
        except IngestError as exc:
            raise rejected(exc) from None


def _too_large(name: str, limit: int) -> IngestError:
    return TooLarge(name, f"larger than the limit of {limit} bytes")


def _no_files(form: FormData, *fields: str) -> None:
    for name in fields:
        if form.getlist(name):
            raise InvalidRequest(f"{name} is not used with this status")


async def _table(form: FormData, settings: DatasetSettings) -> tuple[str, dict[str, TableRow]]:
    upload = one_file(form, TABLE_FIELD)
    assert upload is not None
    name = sanitize_filename(upload.filename or TABLE_FIELD)
    try:
        rows = parse_mapping_table(await read_small(upload, settings.max_table_bytes, name), name)
    except IngestError as exc:
        raise rejected(exc) from None
    return name, {row.file_name: row for row in rows}


def _images_required(form: FormData) -> list[UploadFile]:
    uploads = files_of(form, IMAGE_FIELD)
    if not uploads:
        raise InvalidRequest(f"{IMAGE_FIELD} is required")
    return uploads


def _new_labels(form: FormData) -> list[LabelType]:
    value = text_of(form, "new_label")
    if not value or not value.strip():
        raise InvalidRequest("new_label is required with status add_label")
    try:
        return parse_label_types(value, "new_label")
    except IngestError as exc:
        raise rejected(exc) from None


async def plan_labelled_upload(form: FormData, settings: DatasetSettings, slots: asyncio.Semaphore) -> UploadPlan:
    """`upload_image` (classification and face): add_label, appoint_table, default or `N:label`."""
    status = _status(form)
    if status.kind is StatusKind.NONE:
        raise InvalidRequest("status is required: add_label, appoint_table, default or 'id:label'")
    _no_files(form, XML_FIELD)
    if status.kind is StatusKind.ADD_LABEL:
        _no_files(form, IMAGE_FIELD, TABLE_FIELD)
        return UploadPlan(status, new_labels=_new_labels(form))
    if status.kind is StatusKind.APPOINT_TABLE:
        table_name, table = await _table(form, settings)
        images = await check_images(_images_required(form), settings, slots)
        for image in images:
            row = table.get(image.file_name)
            if row is None:
                raise InvalidRequest(f"{image.file_name}: not listed in the mapping table {table_name}")
            image.label, image.label_source = row.value, f"{table_name} line {row.line}"
        return UploadPlan(status, images)
    _no_files(form, TABLE_FIELD)
    images = await check_images(_images_required(form), settings, slots)
    if status.kind is StatusKind.LABEL:
        assert status.label is not None
        for image in images:
            image.label, image.label_source = str(status.label), "status"
    return UploadPlan(status, images)


async def plan_boxed_upload(form: FormData, settings: DatasetSettings, slots: asyncio.Semaphore) -> UploadPlan:
    """`upload_images` (detection and segmentation): default, image + VOC XML pairs, or appoint_table."""
    status = _status(form)
    if status.kind is StatusKind.ADD_LABEL:
        _no_files(form, IMAGE_FIELD, TABLE_FIELD, XML_FIELD)
        return UploadPlan(status, new_labels=_new_labels(form))
    if status.kind is StatusKind.LABEL:
        raise InvalidRequest("status of upload_images: default, appoint_table, add_label, or none with label_file")
    if status.kind is StatusKind.DEFAULT:
        _no_files(form, TABLE_FIELD, XML_FIELD)
        return UploadPlan(status, await check_images(_images_required(form), settings, slots))

    table_name, table = (await _table(form, settings)) if status.kind is StatusKind.APPOINT_TABLE else ("", {})
    if status.kind is StatusKind.NONE:
        _no_files(form, TABLE_FIELD)
    images = await check_images(_images_required(form), settings, slots)
    xml_uploads = files_of(form, XML_FIELD)
    if not xml_uploads:
        raise InvalidRequest(f"{XML_FIELD} is required (or status default for images without annotations)")
    xmls: dict[str, UploadFile] = {}
    for upload in xml_uploads:
        name = sanitize_filename(upload.filename or "annotation.xml")
        if name in xmls:
            raise InvalidRequest(f"{name}: the same file name is uploaded twice")
        xmls[name] = upload

    if status.kind is StatusKind.APPOINT_TABLE:
        pairs: dict[str, str] = {}
        for image in images:
            row = table.get(image.file_name)
            if row is None:
                raise InvalidRequest(f"{image.file_name}: not listed in the mapping table {table_name}")
            xml_name = sanitize_filename(row.value)
            if xml_name not in xmls:
                raise InvalidRequest(f"{table_name} line {row.line}: annotation file {xml_name} was not uploaded")
            pairs[image.file_name] = xml_name
        unused = sorted(set(xmls) - set(pairs.values()))
        if unused:
            raise InvalidRequest(f"{unused[0]}: not named for any image in the mapping table {table_name}")
    else:
        try:
            pairing = pair_by_stem([image.file_name for image in images], list(xmls))
        except IngestError as exc:
            raise rejected(exc) from None
        if pairing.images_without_xml:
            raise InvalidRequest(f"{pairing.images_without_xml[0]}: no annotation file with the same name")
        if pairing.xml_without_image:
            raise InvalidRequest(f"{pairing.xml_without_image[0]}: no image with the same name")
        pairs = pairing.pairs

    for image in images:
        xml_name = pairs[image.file_name]
        data = await read_small(xmls[xml_name], settings.max_xml_bytes, xml_name)
        try:
            image.annotation = parse_voc(
                data, xml_name, image_size=(image.info.width, image.info.height), max_bytes=settings.max_xml_bytes
            )
        except VocError as exc:
            raise rejected(exc) from None
        image.annotation_name = xml_name
    return UploadPlan(status, images)


def _status(form: FormData) -> UploadStatus:
    try:
        return parse_upload_status(text_of(form, "status"))
    except IngestError as exc:
        raise rejected(exc) from None


# ------------------------------------------------------------------------------------------- writing


async def find_dataset(repo: DatasetRepository, owner_id: int, name: str, *, lock: bool = False) -> Dataset:
    dataset = await repo.image_dataset_by_name(owner_id, name, lock=lock)
    if dataset is None:
        raise NotFound(f"dataset {name!r} not found")
    return dataset


async def _rows(
    repo: DatasetRepository, dataset: Dataset, plan: UploadPlan
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The image rows of a checked upload, against the dataset's labels and files as they are now; also
    the label name of each labelled image."""
    labels = list(await repo.labels(dataset.id))
    label_ids = {(label.number, label.name): label.id for label in labels}
    vocabulary = _label_types(labels)
    names = {label.name for label in labels}
    rows: list[dict[str, Any]] = []
    label_names: dict[str, str] = {}
    for image in plan.images:
        label_id = None
        if image.label is not None:
            try:
                resolved = resolve_label(image.label, vocabulary, image.label_source)
            except IngestError as exc:
                raise rejected(exc) from None
            label_id = label_ids[(resolved.id, resolved.name)]
            label_names[image.file_name] = resolved.name
        boxes = None
        if image.annotation is not None:
            boxes = []
            for number, obj in enumerate(image.annotation.objects, 1):
                if obj.name not in names:
                    raise InvalidRequest(
                        f"{image.annotation_name}: object {number}: {obj.name!r} is not a label "
                        f"of dataset {dataset.name!r} (add it with status add_label)"
                    )
                boxes.append(
                    {
                        "label": obj.name,
                        "xmin": obj.xmin,
                        "ymin": obj.ymin,
                        "xmax": obj.xmax,
                        "ymax": obj.ymax,
                        "difficult": obj.difficult,
                        "truncated": obj.truncated,
                        "pose": obj.pose,
                    }
                )
        rows.append(
            {
                "dataset_id": dataset.id,
                "file_name": image.file_name,
                "format": image.info.format,
                "width": image.info.width,
                "height": image.info.height,
                "size": image.size,
                "label_id": label_id,
                "boxes": boxes,
            }
        )
    existing = await repo.existing_file_names(dataset.id, [row["file_name"] for row in rows])
    if existing:
        raise InvalidRequest(f"{min(existing)}: dataset {dataset.name!r} already has a file of that name")
    return rows, label_names


async def apply_upload(
    repo: DatasetRepository, context: UploadContext, dataset_id: int, plan: UploadPlan, settings: DatasetSettings
) -> int:
    """Writes a checked upload; returns how many images were added."""
    if plan.status.kind is StatusKind.ADD_LABEL:
        dataset = await repo.dataset(dataset_id, lock=True)
        if dataset is None:
            raise NotFound("dataset not found")
        labels = list(await repo.labels(dataset.id))
        try:
            merged = merge_labels(_label_types(labels), plan.new_labels, "new_label")
        except IngestError as exc:
            raise rejected(exc) from None
        known = {(label.number, label.name) for label in labels}
        await repo.add_labels(dataset.id, [(l.id, l.name) for l in merged if (l.id, l.name) not in known])
        return 0

    dataset = await repo.dataset(dataset_id)
    if dataset is None:
        raise NotFound("dataset not found")
    # Labels and names are checked before any byte is stored...
    await _rows(repo, dataset, plan)
    # ...the bytes go to the store outside the dataset's lock (the disk is the slow part)...
    keys = [(await context.staging.put_file(image.upload.file, settings.max_image_bytes)).key for image in plan.images]
    # ...and under the lock the checks run again (a concurrent upload may have taken a name meanwhile)
    # before the rows that reference the bytes are written. A failure from here on discards the bytes.
    await repo.dataset(dataset_id, lock=True)
    rows, label_names = await _rows(repo, dataset, plan)
    references: dict[str, int] = {}
    for row, key in zip(rows, keys):
        row["object_key"] = key
        references[key] = references.get(key, 0) + 1
    await context.staging.attach(repo, references)
    ids = await repo.insert_images(rows)

    if dataset.data_type == "face":
        await repo.insert_enrolments(
            [
                {
                    "dataset_id": dataset.id,
                    "image_id": ids[row["file_name"]],
                    "collection": face_collection(dataset.id),
                    "target_id": label_names[row["file_name"]],
                    "object_key": row["object_key"],
                }
                for row in rows
                if row["file_name"] in label_names
            ]
        )
    return len(rows)
