"""Exports read back by their ecosystems' tools: COCO by pycocotools, VOC by this service's own import."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
from pycocotools.coco import COCO

from tests.conftest import unique
from tests.dataset_api.files import jpeg, objects_dir, png, voc_xml

BOXES = {
    "scratch_1.jpg": [("scratch", 3, 4, 50, 40), ("crazing", 10, 10, 20, 30)],
    "scratch_2.jpg": [("scratch", 0, 0, 64, 48)],
    "plain.png": [],
}


async def _create(client, name: str, data_type: str, labels: str) -> int:
    r = await client.post(
        "/data_module/create_dataset",
        files={"name": (None, name), "data_type": (None, data_type), "desc": (None, "d"), "label_type": (None, labels)},
    )
    assert r.status_code == 200, r.text
    return int(r.json()["dataset_id"])


@pytest.fixture(scope="module")
async def detection(manager) -> tuple[str, int, dict[str, bytes]]:
    client, _ = manager
    name = unique("neu")
    dataset_id = await _create(client, name, "3", "1:crazing,2:scratch")
    files, images = [], {}
    for file_name, boxes in BOXES.items():
        data = images[file_name] = png() if file_name.endswith(".png") else jpeg()
        files.append(("upload_image_site", (file_name, data, "image/jpeg")))
        xml = voc_xml(file_name, 64, 48, boxes)
        files.append(("label_file", (file_name.rsplit(".", 1)[0] + ".xml", xml, "text/xml")))
    r = await client.post(f"/data_module/upload_images/{name}", files=files)
    assert r.json()["err_no"] == 0, r.text
    return name, dataset_id, images


async def _export(client, dataset_id: int, fmt: str, **params) -> bytes:
    r = await client.get(f"/dataset/export/{dataset_id}", params={"format": fmt, **params})
    assert r.status_code == 200, r.text
    assert "attachment" in r.headers["content-disposition"]
    return r.content


async def test_coco_loads_in_pycocotools(manager, detection, tmp_path):
    client, _ = manager
    path = tmp_path / "coco.json"
    path.write_bytes(await _export(client, detection[1], "coco"))
    coco = COCO(str(path))
    assert sorted(img["file_name"] for img in coco.dataset["images"]) == sorted(BOXES)
    assert {c["name"]: c["id"] for c in coco.loadCats(coco.getCatIds())} == {"crazing": 1, "scratch": 2}
    assert len(coco.getAnnIds()) == sum(len(b) for b in BOXES.values())
    image = next(i for i in coco.dataset["images"] if i["file_name"] == "scratch_1.jpg")
    annotations = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
    assert sorted(a["bbox"] for a in annotations) == [[3, 4, 47, 36], [10, 10, 10, 20]]
    assert len(coco.getImgIds(catIds=[2])) == 2


async def test_voc_round_trips_through_upload_images(manager, detection):
    client, _ = manager
    archive = zipfile.ZipFile(io.BytesIO(await _export(client, detection[1], "voc")))
    names = archive.namelist()
    assert sorted(n for n in names if n.startswith("JPEGImages/")) == sorted(f"JPEGImages/{n}" for n in BOXES)
    copy = unique("copy")
    copy_id = await _create(client, copy, "3", "1:crazing,2:scratch")
    files = [
        (
            "upload_image_site" if name.startswith("JPEGImages/") else "label_file",
            (name.split("/", 1)[1], archive.read(name), "application/octet-stream"),
        )
        for name in names
    ]
    r = await client.post(f"/data_module/upload_images/{copy}", files=files)
    assert r.json()["err_no"] == 0, r.text
    original = (await _export(client, detection[1], "csv")).decode()
    assert (await _export(client, copy_id, "csv")).decode() == original
    for name, data in detection[2].items():  # the images themselves, byte for byte
        assert archive.read(f"JPEGImages/{name}") == data
    without = zipfile.ZipFile(io.BytesIO(await _export(client, detection[1], "voc", images="0")))
    assert all(n.startswith("Annotations/") for n in without.namelist())


async def test_yolo_csv_jsonl(manager, detection):
    client, _ = manager
    archive = zipfile.ZipFile(io.BytesIO(await _export(client, detection[1], "yolo")))
    assert archive.read("classes.txt").decode().split() == ["crazing", "scratch"]
    lines = archive.read("labels/scratch_2.txt").decode().split()
    assert lines == ["1", "0.500000", "0.500000", "1.000000", "1.000000"]
    assert archive.read("labels/plain.txt") == b""
    rows = list(csv.DictReader(io.StringIO((await _export(client, detection[1], "csv")).decode())))
    assert len([r for r in rows if r["label"]]) == 3 and {r["file_name"] for r in rows} == set(BOXES)
    records = [json.loads(line) for line in (await _export(client, detection[1], "jsonl")).decode().splitlines()]
    assert {r["file_name"]: len(r["boxes"]) for r in records} == {n: len(b) for n, b in BOXES.items()}


async def test_classification_csv(manager):
    client, _ = manager
    name = unique("cls")
    dataset_id = await _create(client, name, "1", "1:cat,2:dog")
    r = await client.post(
        f"/data_module/upload_image/{name}",
        data={"status": "2:dog"},
        files={"upload_image_site": ("d.jpg", jpeg(), "image/jpeg")},
    )
    assert r.json()["err_no"] == 0
    rows = list(csv.DictReader(io.StringIO((await _export(client, dataset_id, "csv")).decode())))
    assert [(r["file_name"], r["label"]) for r in rows] == [("d.jpg", "dog")]


async def test_qa_jsonl_and_errors(manager, other_manager, admin, client, detection, backing):
    owner, _ = manager
    r = await owner.post(
        "/dataset/upload",
        json={
            "dataset_name": unique("qa"),
            "dataset_task_type": "t",
            "dataset_source": "s",
            "dataset_json": [{"data_question": "q", "data_area": "a"}],
        },
    )
    qa_id = r.json()["dataset_id"]
    lines = (await _export(owner, qa_id, "jsonl")).decode().splitlines()
    assert [json.loads(line)["data_question"] for line in lines] == ["q"]
    r = await owner.get(f"/dataset/export/{qa_id}", params={"format": "coco"})
    assert (r.status_code, r.json()["code"]) == (400, 1005) and "jsonl" in r.json()["message"]
    # New endpoints answer in 003's envelope, also under 001's /dataset/ prefix.
    r = await owner.get(f"/dataset/export/{detection[1]}", params={"format": "pdf"})
    assert (r.status_code, r.json()["code"]) == (400, 1005)
    r = await other_manager[0].get(f"/dataset/export/{detection[1]}")
    assert (r.status_code, r.json()) == (404, {"code": 1000, "message": "dataset not found", "data": {}})
    assert (await admin.get(f"/dataset/export/{detection[1]}")).status_code == 200
    r = await client.get(f"/dataset/export/{detection[1]}")
    assert (r.status_code, r.json()["code"]) == (401, 1001)
    r = await owner.get("/dataset/export/abc")
    assert (r.status_code, r.json()["code"]) == (400, 1005)
    # Every export's temp file is gone once it was sent (or refused).
    assert not list((objects_dir(backing.namespace).parent / "dataset-tmp").iterdir())
