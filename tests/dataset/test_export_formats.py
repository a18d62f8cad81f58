import csv
import io
import json
import zipfile
from pathlib import Path

import pytest
from pycocotools.coco import COCO

from services.dataset.export_formats import (
    CSV_HEADER,
    EXPORT_FORMATS,
    Box,
    ExportError,
    ExportImage,
    ExportSummary,
    categories_of,
    iter_csv,
    iter_jsonl,
    write_coco,
    write_csv,
    write_jsonl,
    write_voc_zip,
    write_yolo_zip,
)
from services.dataset.labels import LabelType
from services.dataset.voc import parse_voc

CATEGORIES = [LabelType(1, "cat"), LabelType(2, "dog"), LabelType(5, "熊猫")]
IMAGES = [
    ExportImage("a.jpg", 640, 480, [Box("cat", 10, 20, 110, 220), Box("dog", 0, 0, 640, 480)]),
    ExportImage("b.png", 200, 100, [Box("熊猫", 50.5, 10, 150, 60.25)]),
    ExportImage("c.jpg", 300, 300, [], label="cat"),
]


def image_bytes(image: ExportImage) -> bytes | None:
    return None if image.file_name == "c.jpg" else f"bytes of {image.file_name}".encode()


# pycocotools 2.0.11 itself trips a numpy 2 deprecation inside annToMask.
@pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.mask")
def test_coco_loads_in_pycocotools(tmp_path: Path) -> None:
    path = tmp_path / "coco.json"
    with path.open("wb") as out:
        summary = write_coco(iter(IMAGES), CATEGORIES, out)
    assert summary == ExportSummary(images=3, annotations=3)
    coco = COCO(str(path))
    assert len(coco.getImgIds()) == 3
    assert len(coco.getAnnIds()) == 3
    assert sorted(coco.getCatIds()) == [1, 2, 5]
    first = coco.loadImgs(coco.getImgIds(imgIds=[1]))[0]
    assert (first["file_name"], first["width"], first["height"]) == ("a.jpg", 640, 480)
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[1]))
    assert [(a["category_id"], a["bbox"], a["area"]) for a in anns] == [
        (1, [10, 20, 100, 200], 20000),
        (2, [0, 0, 640, 480], 640 * 480),
    ]
    panda = coco.loadAnns(coco.getAnnIds(catIds=[5]))[0]
    assert panda["bbox"] == [50.5, 10, 99.5, 50.25]
    assert coco.annToMask(panda).sum() > 0  # the box polygon is a usable segmentation
    assert coco.getAnnIds(imgIds=[3]) == []


def test_coco_empty_dataset_is_valid_json() -> None:
    out = io.BytesIO()
    write_coco([], CATEGORIES, out)
    document = json.loads(out.getvalue())
    assert document["images"] == [] and document["annotations"] == []


def test_voc_zip_reimports_identically() -> None:
    out = io.BytesIO()
    summary = write_voc_zip(IMAGES, out, image_source=image_bytes)
    assert summary == ExportSummary(3, 3)
    with zipfile.ZipFile(out) as archive:
        names = set(archive.namelist())
        assert names == {
            "Annotations/a.xml",
            "Annotations/b.xml",
            "Annotations/c.xml",
            "JPEGImages/a.jpg",
            "JPEGImages/b.png",
        }
        assert archive.read("JPEGImages/a.jpg") == b"bytes of a.jpg"
        for image in IMAGES:
            stem = image.file_name.rsplit(".", 1)[0]
            parsed = parse_voc(archive.read(f"Annotations/{stem}.xml"))
            assert parsed.filename == image.file_name
            assert parsed.size == (image.width, image.height)
            assert [(o.name, o.xmin, o.ymin, o.xmax, o.ymax) for o in parsed.objects] == [
                (b.label, b.xmin, b.ymin, b.xmax, b.ymax) for b in image.boxes
            ]


def test_voc_zip_streams_file_objects(tmp_path: Path) -> None:
    source = tmp_path / "big.jpg"
    source.write_bytes(b"\xff" * 3_000_000)
    out = io.BytesIO()
    write_voc_zip([ExportImage("big.jpg", 10, 10)], out, image_source=lambda image: source.open("rb"))
    with zipfile.ZipFile(out) as archive:
        assert archive.getinfo("JPEGImages/big.jpg").file_size == 3_000_000


def test_yolo_numbers() -> None:
    out = io.BytesIO()
    summary = write_yolo_zip(IMAGES, CATEGORIES, out, image_source=image_bytes)
    assert summary == ExportSummary(3, 3)
    with zipfile.ZipFile(out) as archive:
        assert archive.read("classes.txt").decode() == "cat\ndog\n熊猫\n"
        a_lines = archive.read("labels/a.txt").decode().splitlines()
        assert a_lines == [
            "0 0.093750 0.250000 0.156250 0.416667",  # cx=60/640 cy=120/480 w=100/640 h=200/480
            "1 0.500000 0.500000 1.000000 1.000000",
        ]
        cls, cx, cy, w, h = archive.read("labels/b.txt").decode().split()
        assert cls == "2"
        assert float(cx) == pytest.approx((50.5 + 150) / 2 / 200, abs=1e-6)
        assert float(cy) == pytest.approx((10 + 60.25) / 2 / 100, abs=1e-6)
        assert float(w) == pytest.approx(99.5 / 200, abs=1e-6)
        assert float(h) == pytest.approx(50.25 / 100, abs=1e-6)
        assert archive.read("labels/c.txt") == b""
        assert "images/a.jpg" in archive.namelist()


def test_csv_parses_back() -> None:
    text = "".join(iter_csv(IMAGES))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_HEADER
    assert len(rows) == 4
    assert rows[0] == {
        "file_name": "a.jpg",
        "width": "640",
        "height": "480",
        "label": "cat",
        "xmin": "10",
        "ymin": "20",
        "xmax": "110",
        "ymax": "220",
    }
    assert rows[2]["label"] == "熊猫" and float(rows[2]["xmin"]) == 50.5
    assert rows[3] == {
        "file_name": "c.jpg",
        "width": "300",
        "height": "300",
        "label": "cat",
        "xmin": "",
        "ymin": "",
        "xmax": "",
        "ymax": "",
    }
    out = io.BytesIO()
    assert write_csv(IMAGES, out) == 4
    assert out.getvalue().decode() == text


def test_csv_quotes_awkward_values() -> None:
    image = ExportImage('we,ird "name".jpg', 10, 10, [Box("a,b", 1, 1, 2, 2)])
    rows = list(csv.reader(io.StringIO("".join(iter_csv([image])))))
    assert rows[1][:4] == ['we,ird "name".jpg', "10", "10", "a,b"]


def test_jsonl() -> None:
    records = [{"data_question": "为什么?", "data_answer": [{"answer": "因为", "ranking_number": 0}]}, {"x": 1}]
    lines = list(iter_jsonl(records))
    assert len(lines) == 2 and all(line.endswith("\n") for line in lines)
    assert [json.loads(line) for line in lines] == records
    assert "为什么" in lines[0]
    out = io.BytesIO()
    assert write_jsonl(iter(records), out) == 2


def test_writers_consume_generators_once() -> None:
    consumed = []

    def images():
        for image in IMAGES:
            consumed.append(image.file_name)
            yield image

    write_coco(images(), CATEGORIES, io.BytesIO())
    assert consumed == ["a.jpg", "b.png", "c.jpg"]


def test_unknown_label_and_bad_boxes() -> None:
    with pytest.raises(ExportError, match="tiger"):
        write_coco([ExportImage("x.jpg", 10, 10, [Box("tiger", 0, 0, 5, 5)])], CATEGORIES, io.BytesIO())
    with pytest.raises(ExportError, match="tiger"):
        write_yolo_zip([ExportImage("x.jpg", 10, 10, [Box("tiger", 0, 0, 5, 5)])], CATEGORIES, io.BytesIO())
    with pytest.raises(ExportError, match="outside"):
        list(iter_csv([ExportImage("x.jpg", 10, 10, [Box("cat", 0, 0, 11, 5)])]))
    with pytest.raises(ExportError, match="same name"):
        write_voc_zip([ExportImage("x.jpg", 10, 10), ExportImage("x.png", 10, 10)], io.BytesIO())


def test_export_names_are_safe_inside_zips() -> None:
    out = io.BytesIO()
    write_voc_zip([ExportImage("../../evil.jpg", 10, 10)], out, image_source=lambda image: b"x")
    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == ["Annotations/evil.xml", "JPEGImages/evil.jpg"]


def test_categories_of_and_formats() -> None:
    assert categories_of(iter(IMAGES)) == [LabelType(1, "cat"), LabelType(2, "dog"), LabelType(3, "熊猫")]
    assert EXPORT_FORMATS["coco"].media_type == "application/json"
    assert set(EXPORT_FORMATS) == {"coco", "voc", "yolo", "csv", "jsonl"}
