"""Document 000's dataset module through the gateway: every request example, and its errors."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.conftest import unique
from tests.dataset_api.files import jpeg, png, stored_objects, voc_xml


def _form(**fields: str) -> dict[str, tuple[None, str]]:
    # The document's examples send every field as a multipart part ('name': (None, 'test')).
    return {k: (None, v) for k, v in fields.items()}


async def create(
    client,
    name: str,
    data_type: str = "1",
    label_type: str | None = "1:cat,2:dog,3:panda",
    upload_file: tuple[str, bytes] | None = None,
):
    fields = _form(name=name, data_type=data_type, desc="testfile")
    if label_type is not None:
        fields["label_type"] = (None, label_type)
    if upload_file is not None:
        fields["upload_file"] = (upload_file[0], upload_file[1], "text/plain")
    return await client.post("/data_module/create_dataset", files=fields)


def assert_ok(response, dataset_id: str | None = None) -> str:
    body = response.json()
    assert response.status_code == 200, response.text
    assert (body["err_no"], body["err_desc"]) == (0, "OK")
    assert body["request_id"] and isinstance(body["time_used"], int)
    assert isinstance(body["dataset_id"], str) and body["dataset_id"].isdigit()
    if dataset_id is not None:
        assert body["dataset_id"] == dataset_id
    return body["dataset_id"]


def assert_error(response, status: int, err_no: str, *fragments: str) -> None:
    body = response.json()
    assert response.status_code == status, response.text
    assert body["err_no"] == err_no, body
    assert body["request_id"]
    for fragment in fragments:
        assert fragment in body["err_desc"], body


async def labels_of(db, dataset_id: str) -> list[tuple[int, str]]:
    rows = await db.fetch(
        "SELECT number, name FROM dataset.labels WHERE dataset_id = $1 ORDER BY number", int(dataset_id)
    )
    return [(r["number"], r["name"]) for r in rows]


async def images_of(db, dataset_id: str) -> dict[str, dict]:
    rows = await db.fetch(
        "SELECT i.file_name, i.width, i.height, i.boxes, l.name AS label FROM dataset.images i "
        "LEFT JOIN dataset.labels l ON l.id = i.label_id WHERE i.dataset_id = $1",
        int(dataset_id),
    )
    return {r["file_name"]: dict(r) for r in rows}


# ------------------------------------------------------------------------------------------ creation


async def test_create_dataset_examples(manager, db):
    client, _ = manager
    many = assert_ok(await create(client, unique("test")))  # 多标注添加
    assert await labels_of(db, many) == [(1, "cat"), (2, "dog"), (3, "panda")]
    single = assert_ok(await create(client, unique("test"), label_type="1：cat"))  # 单标注添加, full-width colon
    assert await labels_of(db, single) == [(1, "cat")]
    from_file = assert_ok(
        await create(client, unique("test"), label_type=None, upload_file=("xy.prototxt", b"1:cat\n2:dog\n"))
    )  # 文件上传
    assert await labels_of(db, from_file) == [(1, "cat"), (2, "dog")]
    prototxt = b'item {\n  name: "none_of_the_above"\n  label: 0\n}\nitem {\n  name: "cat"\n  label: 1\n}\n'
    caffe = assert_ok(await create(client, unique("test"), label_type=None, upload_file=("xy.prototxt", prototxt)))
    assert await labels_of(db, caffe) == [(0, "none_of_the_above"), (1, "cat")]
    row = await db.fetchrow(
        "SELECT kind, document, data_type, description FROM dataset.datasets WHERE id = $1", int(many)
    )
    assert dict(row) == {"kind": "image", "document": "000", "data_type": "classification", "description": "testfile"}


async def test_create_dataset_errors(manager, other_manager, tagger, client):
    owner, _ = manager
    name = unique("dup")
    assert_ok(await create(owner, name))
    assert_error(await create(owner, name), 400, "4003", "已存在")
    assert_ok(await create(other_manager[0], name))  # names are per owner
    # label_type and upload_file: exactly one of the two
    assert_error(await create(owner, unique("x"), upload_file=("l.txt", b"1:cat")), 400, "4103", "exactly one")
    assert_error(await create(owner, unique("x"), label_type=None), 400, "4103", "exactly one")
    assert_error(await create(owner, unique("x"), label_type="1:cat,1:dog"), 400, "4103", "label_type")
    assert_error(
        await create(owner, unique("x"), label_type=None, upload_file=("l.txt", b"\xff\xfe\x00\x00")),
        400,
        "4103",
        "l.txt",
    )
    assert_error(await create(owner, unique("x"), data_type="9" * 33), 400, "4103", "data_type")
    assert_error(await create(owner, unique("x"), data_type=" "), 400, "4103", "data_type")
    assert_error(
        await owner.post("/data_module/create_dataset", files=_form(data_type="1", desc="d", label_type="1:a")),
        400,
        "4103",
        "name",
    )
    assert_error(await create(owner, "a/b"), 400, "4103", "slash")
    assert_error(await owner.post("/data_module/create_dataset", json={"name": "x"}), 400, "4103", "multipart")
    assert_error(await create(client, unique("x")), 401, "4101")
    assert_error(await create(tagger[0], unique("x")), 403, "4105")


# ---------------------------------------------------------------------------- classification and face


async def test_upload_image_examples(manager, db):
    client, _ = manager
    name = unique("cls")
    dataset_id = assert_ok(await create(client, name, label_type="2:dog"))
    url = f"/data_module/upload_image/{name}"

    # 新增标签
    assert_ok(await client.post(url, files=_form(status="add_label", new_label="1:cat")), dataset_id)
    assert await labels_of(db, dataset_id) == [(1, "cat"), (2, "dog")]
    assert_ok(await client.post(url, files=_form(status="add_label", new_label="1:cat")), dataset_id)  # no-op

    # 对应表上传, 单张图片 (the document sends a JPEG named dogs.jpg as image/png)
    r = await client.post(
        url,
        files={
            **_form(status="appoint_table"),
            "upload_image_site": ("dogs.jpg", jpeg(), "image/png"),
            "table_site": ("image_list.txt", b"dogs.jpg 2:dog\n", "text/plain"),
        },
    )
    assert_ok(r, dataset_id)
    # 对应表上传, 多张图片
    table = b"aaa.png\tcat\nbbb.jpg,1:cat\nccc.jpeg 2\n"
    r = await client.post(
        url,
        data={"status": "appoint_table"},
        files=[
            ("table_site", ("image_list.txt", table, "text/plain")),
            ("upload_image_site", ("aaa.png", png(), "image/png")),
            ("upload_image_site", ("bbb.jpg", jpeg(), "image/jpg")),
            ("upload_image_site", ("ccc.jpeg", jpeg(), "image/jpeg")),
        ],
    )
    assert_ok(r, dataset_id)
    # 未标注上传
    r = await client.post(
        url,
        data={"status": "default"},
        files=[
            ("upload_image_site", ("u1.jpg", jpeg(), "image/jpeg")),
            ("upload_image_site", ("u2.png", png(), "image/png")),
        ],
    )
    assert_ok(r, dataset_id)
    # 标注上传
    r = await client.post(
        url,
        data={"status": "1:cat"},
        files=[
            ("upload_image_site", ("d1.jpg", jpeg(), "image/jpeg")),
            ("upload_image_site", ("d2.jpg", jpeg(), "image/jpeg")),
        ],
    )
    assert_ok(r, dataset_id)

    images = await images_of(db, dataset_id)
    assert {n: i["label"] for n, i in images.items()} == {
        "dogs.jpg": "dog",
        "aaa.png": "cat",
        "bbb.jpg": "cat",
        "ccc.jpeg": "dog",
        "u1.jpg": None,
        "u2.png": None,
        "d1.jpg": "cat",
        "d2.jpg": "cat",
    }
    assert (images["aaa.png"]["width"], images["aaa.png"]["height"]) == (64, 48)


async def test_upload_image_errors(manager, db, client):
    owner, _ = manager
    name = unique("cls")
    dataset_id = assert_ok(await create(owner, name))
    url = f"/data_module/upload_image/{name}"
    image = [("upload_image_site", ("a.jpg", jpeg(), "image/jpeg"))]
    assert_error(await owner.post(url, files=image), 400, "4103", "status")
    assert_error(await owner.post(url, data={"status": "7:horse"}, files=image), 400, "4103", "horse")
    assert_error(await owner.post(url, data={"status": "sideways"}, files=image), 400, "4103", "status")
    assert_error(await owner.post(url, data={"status": "default"}), 400, "4103", "upload_image_site")
    assert_error(await owner.post(url, data={"status": "add_label"}), 400, "4103", "new_label")
    assert_error(await owner.post(url, data={"status": "add_label", "new_label": "9:cat"}), 400, "4103", "cat")
    r = await owner.post(
        url,
        data={"status": "appoint_table"},
        files=[*image, ("table_site", ("t.txt", b"other.jpg cat\n", "text/plain"))],
    )
    assert_error(r, 400, "4103", "a.jpg", "t.txt")
    r = await owner.post(
        url, data={"status": "appoint_table"}, files=[*image, ("table_site", ("t.txt", b"a.jpg lion\n", "text/plain"))]
    )
    assert_error(r, 400, "4103", "lion")
    r = await owner.post(url, data={"status": "default"}, files=[*image, ("upload_image_site", ("a.jpg", jpeg(), "i"))])
    assert_error(r, 400, "4103", "a.jpg", "twice")
    assert await images_of(db, dataset_id) == {}
    assert_ok(await owner.post(url, data={"status": "default"}, files=image))
    assert_error(await owner.post(url, data={"status": "default"}, files=image), 400, "4103", "a.jpg", "already")

    assert_error(
        await owner.post(f"/data_module/upload_image/{unique('none')}", data={"status": "default"}, files=image),
        404,
        "4002",
    )
    detection = unique("det")
    assert_ok(await create(owner, detection, data_type="3"))
    assert_ok(await owner.post(f"/data_module/upload_image/{detection}", data={"status": "default"}, files=image))
    assert_error(await client.post(url, data={"status": "default"}, files=image), 401, "4101")


@pytest.mark.parametrize("data_type", ["1", "7", "图像"])
async def test_no_upload_is_refused_for_its_data_type(manager, db, data_type):
    """000 documents no codes for data_type; its examples create a dataset with '1' and use both routes."""
    client, _ = manager
    name = unique("any")
    dataset_id = assert_ok(await create(client, name, data_type=data_type, label_type="1:cat,2:dog"))
    r = await client.post(
        f"/data_module/upload_image/{name}",
        data={"status": "1:cat"},
        files={"upload_image_site": ("a.jpg", jpeg(), "image/jpeg")},
    )
    assert_ok(r, dataset_id)
    r = await client.post(
        f"/data_module/upload_images/{name}",
        files={
            "upload_image_site": ("b.jpg", jpeg(64, 48), "image/jpeg"),
            "label_file": ("b.xml", voc_xml("b.jpg", 64, 48, [("dog", 1, 2, 30, 40)]), "application/xml"),
        },
    )
    assert_ok(r, dataset_id)
    images = await images_of(db, dataset_id)
    assert set(images) == {"a.jpg", "b.jpg"}
    stored = await db.fetchval("SELECT data_type FROM dataset.datasets WHERE id = $1", int(dataset_id))
    assert stored == {"1": "classification"}.get(data_type, data_type)


async def test_face_dataset_queues_enrolments(manager, db):
    client, _ = manager
    name = unique("face")
    dataset_id = assert_ok(await create(client, name, data_type="2", label_type="1:alice,2:bob"))
    url = f"/data_module/upload_image/{name}"
    r = await client.post(
        url,
        data={"status": "1:alice"},
        files=[
            ("upload_image_site", ("a1.jpg", jpeg(), "image/jpeg")),
            ("upload_image_site", ("a2.jpg", jpeg(), "image/jpeg")),
        ],
    )
    assert_ok(r, dataset_id)
    assert_ok(
        await client.post(
            url, data={"status": "default"}, files=[("upload_image_site", ("x.jpg", jpeg(), "image/jpeg"))]
        )
    )
    rows = await db.fetch(
        "SELECT e.collection, e.target_id, e.status, i.file_name FROM dataset.enrolment_outbox e "
        "JOIN dataset.images i ON i.id = e.image_id WHERE e.dataset_id = $1 ORDER BY e.id",
        int(dataset_id),
    )
    assert [(r["collection"], r["target_id"], r["file_name"]) for r in rows] == [
        (f"dataset-{dataset_id}", "alice", "a1.jpg"),
        (f"dataset-{dataset_id}", "alice", "a2.jpg"),
    ]
    # Their status is not checked here: the drainer may already have sent them (test_enrolment.py covers
    # delivery), and these photos hold no face, so the face service may have refused them.


# -------------------------------------------------------------------------- detection and segmentation


async def test_upload_images_examples(manager, db):
    client, _ = manager
    name = unique("det")
    dataset_id = assert_ok(await create(client, name, data_type="3", label_type="1:cat,2:dog"))
    url = f"/data_module/upload_images/{name}"
    # 未标注上传, 单张图片 / 多张图片
    assert_ok(
        await client.post(
            url, files={**_form(status="default"), "upload_image_site": ("dogs.jpeg", jpeg(), "image/jpeg")}
        ),
        dataset_id,
    )
    r = await client.post(
        url,
        data={"status": "default"},
        files=[
            ("upload_image_site", ("aaa.png", png(), "image/png")),
            ("upload_image_site", ("bbb.jpg", jpeg(), "image/jpg")),
            ("upload_image_site", ("ccc.jpeg", jpeg(), "image/jpeg")),
        ],
    )
    assert_ok(r, dataset_id)
    # 已标注, 未选择对应表: no status field; (单图单标注) and (多图多标注)
    dogs2 = voc_xml("dogs2.jpeg", 64, 48, [("dog", 1, 2, 30, 40)])
    r = await client.post(
        url,
        files={
            "upload_image_site": ("dogs2.jpeg", jpeg(64, 48), "image/jpeg"),
            "label_file": ("dogs2.xml", dogs2, "application/xml"),
        },
    )
    assert_ok(r, dataset_id)
    r = await client.post(
        url,
        files=[
            ("upload_image_site", ("d3.jpg", jpeg(), "image/jpg")),
            ("upload_image_site", ("cats.jpg", jpeg(), "image/jpg")),
            ("label_file", ("d3.xml", voc_xml("d3.jpg", 64, 48, [("dog", 0, 0, 64, 48)]), "application/xml")),
            (
                "label_file",
                (
                    "cats.xml",
                    voc_xml("cats.jpg", 64, 48, [("cat", 5, 5, 10, 10), ("cat", 20, 20, 40, 30)]),
                    "application/xml",
                ),
            ),
        ],
    )
    assert_ok(r, dataset_id)
    # 对应表 (single), and 对应表 (多图片多标注): the table names each image's annotation file
    r = await client.post(
        url,
        files={
            **_form(status="appoint_table"),
            "table_site": ("image_list_voc.txt", b"t1.jpeg t1-boxes.xml\n", "text/plain"),
            "upload_image_site": ("t1.jpeg", jpeg(), "image/jpeg"),
            "label_file": ("t1-boxes.xml", voc_xml("t1.jpeg", 64, 48, [("cat", 1, 1, 9, 9)]), "application/xml"),
        },
    )
    assert_ok(r, dataset_id)
    r = await client.post(
        url,
        data={"status": "appoint_table"},
        files=[
            ("table_site", ("image_list_voc.txt", b"t2.jpg a.xml\nt3.jpg b.xml\n", "text/plain")),
            ("upload_image_site", ("t2.jpg", jpeg(), "image/jpg")),
            ("upload_image_site", ("t3.jpg", jpeg(), "image/jpg")),
            ("label_file", ("a.xml", voc_xml("t2.jpg", 64, 48, [("dog", 2, 2, 3, 3)]), "application/xml")),
            ("label_file", ("b.xml", voc_xml("t3.jpg", 64, 48, []), "application/xml")),
        ],
    )
    assert_ok(r, dataset_id)

    # Labels can be added to detection datasets too.
    assert_ok(await client.post(url, files=_form(status="add_label", new_label="3:bird")), dataset_id)
    assert await labels_of(db, dataset_id) == [(1, "cat"), (2, "dog"), (3, "bird")]

    images = await images_of(db, dataset_id)
    assert sorted(images) == sorted(
        [
            "dogs.jpeg",
            "aaa.png",
            "bbb.jpg",
            "ccc.jpeg",
            "dogs2.jpeg",
            "d3.jpg",
            "cats.jpg",
            "t1.jpeg",
            "t2.jpg",
            "t3.jpg",
        ]
    )
    boxes = {n: json.loads(i["boxes"]) if i["boxes"] else i["boxes"] for n, i in images.items()}
    assert boxes["aaa.png"] is None
    assert [(b["label"], b["xmin"], b["ymax"]) for b in boxes["cats.jpg"]] == [("cat", 5, 10), ("cat", 20, 30)]
    assert [b["label"] for b in boxes["t2.jpg"]] == ["dog"] and boxes["t3.jpg"] == []


async def test_upload_images_errors(manager, db):
    client, _ = manager
    name = unique("det")
    dataset_id = assert_ok(await create(client, name, data_type="4", label_type="1:cat"))
    url = f"/data_module/upload_images/{name}"
    image = ("upload_image_site", ("a.jpg", jpeg(), "image/jpeg"))
    good_xml = ("label_file", ("a.xml", voc_xml("a.jpg", 64, 48, [("cat", 1, 1, 5, 5)]), "application/xml"))
    assert_error(await client.post(url, files=[image]), 400, "4103", "label_file")
    assert_error(
        await client.post(url, files=[image, ("label_file", ("b.xml", voc_xml("b.jpg", 64, 48, []), "x"))]),
        400,
        "4103",
        "a.jpg",
    )
    stray = ("label_file", ("z.xml", voc_xml("z", 1, 1, []), "x"))
    assert_error(await client.post(url, files=[image, good_xml, stray]), 400, "4103", "z.xml")
    r = await client.post(
        url,
        files=[image, ("label_file", ("a.xml", voc_xml("a.jpg", 64, 48, [("dog", 1, 1, 5, 5)]), "application/xml"))],
    )
    assert_error(r, 400, "4103", "a.xml", "dog")
    r = await client.post(
        url,
        files=[image, ("label_file", ("a.xml", voc_xml("a.jpg", 64, 48, [("cat", 1, 1, 99, 5)]), "application/xml"))],
    )
    assert_error(r, 400, "4103", "a.xml", "outside")
    r = await client.post(url, files=[image, ("label_file", ("a.xml", voc_xml("a.jpg", 640, 480, []), "x"))])
    assert_error(r, 400, "4103", "a.xml", "does not match")
    assert_error(
        await client.post(url, files=[image, ("label_file", ("a.xml", b"<annotation><size>", "x"))]),
        400,
        "4103",
        "a.xml",
        "malformed",
    )
    r = await client.post(
        url,
        data={"status": "appoint_table"},
        files=[image, good_xml, ("table_site", ("t.txt", b"a.jpg missing.xml\n", "text/plain"))],
    )
    assert_error(r, 400, "4103", "missing.xml")
    assert_error(await client.post(url, data={"status": "1:cat"}, files=[image]), 400, "4103", "status")
    assert await images_of(db, dataset_id) == {}
    assert_ok(await client.post(url, files=[image, good_xml]), dataset_id)


async def test_concurrent_uploads_of_one_name_keep_one(manager, db, backing):
    """Two uploads of the same file name race: one wins, the other is told, nothing is half-written."""
    client, _ = manager
    name = unique("race")
    dataset_id = assert_ok(await create(client, name))
    url = f"/data_module/upload_image/{name}"
    before = stored_objects(backing.namespace)
    results = await asyncio.gather(
        *(
            client.post(
                url, data={"status": "default"}, files=[("upload_image_site", ("same.jpg", jpeg(), "image/jpeg"))]
            )
            for _ in range(3)
        )
    )
    codes = sorted(str(r.json()["err_no"]) for r in results)
    assert codes == ["0", "4103", "4103"], [r.text for r in results]
    assert list(await images_of(db, dataset_id)) == ["same.jpg"]
    # The losers' bytes were stored before their transaction failed: they are gone again.
    assert len(stored_objects(backing.namespace) - before) == 1


async def test_the_gateway_docs_describe_the_forms(client):
    paths = (await client.get("/openapi.json")).json()["paths"]
    form = paths["/data_module/upload_images/{collection_name}"]["post"]["requestBody"]["content"]
    assert set(form["multipart/form-data"]["schema"]["properties"]) >= {"status", "upload_image_site", "label_file"}
    for path in (
        "/data_module/create_dataset",
        "/dataset/upload",
        "/dataset/export/{dataset_id}",
        "/task/upload_data",
        "/picbed/",
        "/picbed/{name}",
        "/video/",
        "/video/{name}",
    ):
        assert path in paths, path
    assert not any(path.startswith("/internal") for path in paths)
