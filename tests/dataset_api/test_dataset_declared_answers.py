"""Every dataset route declares its answer (issue 14), and the declaration is true.

The scenario reaches a success answer on every JSON operation of the dataset service through the gateway,
with a client that validates each 2xx JSON answer against the merged /openapi.json
(tests/openapi/declared_answers.py: a missing, mistyped or undeclared field fails); the routes that answer
a file must answer one of the media types they declare. The last test asserts that no JSON operation was
left out, so a new route must be declared and exercised here. Run the module whole.
"""

from __future__ import annotations

import json

import httpx
import pytest_asyncio

from tests.conftest import unique
from tests.dataset_api.files import jpeg, mp4_bytes, zip_of
from tests.openapi.declared_answers import DeclaredAnswers

QA_RECORDS = [
    {
        "data_background": "合同纠纷",
        "data_question": "违约金过高怎么办?",
        "data_answer": [{"answer": "请求法院调整", "ranking_number": 0, "reserve": 0}],
        "data_area": "法律",
        "data_keyword": "违约金",
        "other": "",
    },
    {"data_question": "发烧怎么办?", "data_answer": [], "data_area": "医学"},
]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def declared(merged_openapi: dict) -> DeclaredAnswers:
    return DeclaredAnswers(merged_openapi, ("dataset",))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def checked(manager, declared) -> httpx.AsyncClient:
    client, _ = manager
    return declared.watch(client)


def _ok(response: httpx.Response) -> dict:
    assert response.is_success, f"{response.request.method} {response.request.url.path}: {response.text[:300]}"
    body = response.json()
    assert body.get("err_no", 0) == 0 and body.get("code", 0) in (0, 20), response.text[:300]
    return body


def _declared_media_types(spec: dict, path: str) -> set[str]:
    return set(spec["paths"][path]["get"]["responses"]["200"]["content"])


def _media_type(response: httpx.Response) -> str:
    assert response.status_code in (200, 206), response.text[:300]
    return response.headers["content-type"].split(";")[0]


async def test_000_answers_and_their_exports(checked: httpx.AsyncClient, merged_openapi: dict) -> None:
    name = unique("declared")
    form = {"name": (None, name), "data_type": (None, "1"), "desc": (None, "d"), "label_type": (None, "1:cat,2:dog")}
    dataset_id = _ok(await checked.post("/data_module/create_dataset", files=form))["dataset_id"]
    cat = {"upload_image_site": ("cat.jpg", jpeg(), "image/jpeg")}
    _ok(await checked.post(f"/data_module/upload_image/{name}", data={"status": "1:cat"}, files=cat))
    dog = {"upload_image_site": ("dog.jpg", jpeg(32, 32), "image/jpeg")}
    _ok(await checked.post(f"/data_module/upload_images/{name}", data={"status": "default"}, files=dog))

    coco = await checked.get(f"/dataset/export/{dataset_id}", params={"format": "coco"})  # JSON: checked
    assert [image["file_name"] for image in coco.json()["images"]] == ["cat.jpg", "dog.jpg"]
    for fmt in ("voc", "csv", "jsonl"):  # files of the types the route declares
        export = await checked.get(f"/dataset/export/{dataset_id}", params={"format": fmt})
        assert _media_type(export) in _declared_media_types(merged_openapi, "/dataset/export/{dataset_id}"), fmt


async def test_001_answers(checked: httpx.AsyncClient) -> None:
    body = {
        "dataset_name": unique("qa"),
        "dataset_task_type": "问答排序",
        "dataset_source": "樊坤",
        "dataset_json": json.dumps(QA_RECORDS, ensure_ascii=False),
    }
    dataset_id = _ok(await checked.post("/dataset/upload", json=body))["dataset_id"]
    assert any(entry["dataset_id"] == dataset_id for entry in _ok(await checked.get("/dataset/list"))["response"])
    assert len(_ok(await checked.get("/dataset/get", params={"dataset_id": dataset_id}))["response"]) == 2
    records = _ok(await checked.get("/dataset/download", params={"dataset_id": dataset_id}))["response"]
    assert [record["data_area"] for record in records] == ["法律", "医学"]


async def test_003_answers(checked: httpx.AsyncClient, merged_openapi: dict) -> None:
    async def upload_data(members: dict[str, bytes]) -> httpx.Response:
        archive = {"file": ("data.zip", zip_of(members), "application/zip")}
        return await checked.post("/task/upload_data", params={"data_type": "text"}, files=archive)

    assert _ok(await upload_data({"1.txt": b"one", "2.txt": b"two"}))["code"] == 0
    assert _ok(await upload_data({"1.txt": b"one", "3.txt": b"three"}))["code"] == 20  # both answers are 200

    for route, field, file in [
        ("picbed", "img", ("a.jpg", jpeg(), "image/jpeg")),
        ("video", "video", ("a.mp4", mp4_bytes(4096), "video/mp4")),
    ]:
        url = _ok(await checked.post(f"/{route}/", files={field: file}))["data"]["url"]
        assert _media_type(await checked.get(url)) in _declared_media_types(merged_openapi, f"/{route}/{{name}}")
        _ok(await checked.delete(url))


def test_every_dataset_json_operation_was_checked(declared: DeclaredAnswers) -> None:
    assert not declared.undeclared, f"operations without a declared answer: {declared.undeclared}"
    assert declared.operations, "the dataset service declares no JSON answer"
    assert not declared.unseen(), f"declared answers no test reached: {declared.unseen()}"
