"""Document 001's `/dataset/*` through the gateway, and the internal API the tasks service uses."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import httpx

from shared.identity import CALLER_HEADER, sign_caller
from tests.conftest import unique

DATA = [
    {
        "data_background": "合同纠纷",
        "data_question": "违约金过高怎么办?",
        "data_answer": [
            {"answer": "请求法院调整", "ranking_number": 0, "reserve": 0},
            {"answer": "协商", "ranking_number": 1, "reserve": 1},
        ],
        "data_area": "法律",
        "data_keyword": "违约金",
        "other": "",
    },
    {
        "data_background": "",
        "data_question": "发烧怎么办?",
        "data_answer": [],
        "data_area": "医学",
        "data_keyword": "发烧",
        "other": "x",
    },
    {
        "data_background": "",
        "data_question": "租房押金不退?",
        "data_answer": "[]",
        "data_area": "法律",
        "data_keyword": "",
        "other": "",
    },
]
NOT_LOGGED_IN = (401, {"response": "未登录"})
NOT_MANAGER = (403, {"response": "非管理员用户"})


async def upload(client, name: str, data: object = None):
    body = {
        "dataset_name": name,
        "dataset_task_type": "问答排序",
        "dataset_source": "樊坤",
        "dataset_json": json.dumps(DATA, ensure_ascii=False) if data is None else data,
    }
    return await client.post("/dataset/upload", json=body)


def answer(response) -> tuple[int, object]:
    return response.status_code, response.json()


async def test_upload_list_download(manager, other_manager, admin):
    client, _ = manager
    name = unique("qa")
    r = await upload(client, name)  # dataset_json = JSON.stringify(data), as documented
    assert r.status_code == 200 and r.json()["response"] == "success", r.text
    dataset_id = r.json()["dataset_id"]
    r = await upload(client, unique("qa"), DATA)  # the array itself is accepted too
    assert r.json()["response"] == "success"

    listed = (await client.get("/dataset/list")).json()["response"]
    mine = next(d for d in listed if d["dataset_id"] == dataset_id)
    assert mine == {
        "dataset_id": dataset_id,
        "dataset_name": name,
        "dataset_task_type": "问答排序",
        "dataset_source": "樊坤",
        "dataset_upload_time": mine["dataset_upload_time"],
        "dataset_assign_time": "-/-/-",
        "status": "未分配",
    }
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}", mine["dataset_upload_time"])
    assert all(d["dataset_id"] != dataset_id for d in (await other_manager[0].get("/dataset/list")).json()["response"])
    assert any(d["dataset_id"] == dataset_id for d in (await admin.get("/dataset/list")).json()["response"])

    r = await client.get("/dataset/download", params={"dataset_id": dataset_id})
    assert r.status_code == 200
    records = r.json()["response"]
    assert [rec["data_question"] for rec in records] == [d["data_question"] for d in DATA]
    assert records[0] == {**DATA[0], "expert_name": "-"}
    assert records[2]["data_answer"] == []
    assert answer(await other_manager[0].get("/dataset/download", params={"dataset_id": dataset_id})) == (
        404,
        {"response": "数据集不存在"},
    )
    assert (await admin.get("/dataset/download", params={"dataset_id": dataset_id})).status_code == 200


async def test_errors(manager, tagger, client):
    owner, _ = manager
    for method, path in [
        ("POST", "/dataset/upload"),
        ("GET", "/dataset/list"),
        ("GET", "/dataset/get"),
        ("GET", "/dataset/download"),
    ]:
        kwargs = {"json": {}} if method == "POST" else {"params": {"dataset_id": "1"}}
        assert answer(await client.request(method, path, **kwargs)) == NOT_LOGGED_IN, path
        assert answer(await tagger[0].request(method, path, **kwargs)) == NOT_MANAGER, path

    bad = [{"data_question": "q", "data_area": "", "data_answer": []}]
    status, body = answer(await upload(owner, unique("qa"), json.dumps(bad)))
    assert status == 400 and body["response"].startswith("参数错误") and "record 0" in body["response"]
    status, body = answer(await upload(owner, unique("qa"), "{not json"))
    assert status == 400 and "not valid JSON" in body["response"]
    status, body = answer(await owner.post("/dataset/upload", json={"dataset_json": "[]"}))
    assert status == 400 and "dataset_name" in body["response"]
    status, body = answer(
        await owner.post("/dataset/upload", content=b"[1,", headers={"content-type": "application/json"})
    )
    assert status == 400 and body["response"].startswith("参数错误")
    for value in (None, "abc", "99999999999"):
        params = {} if value is None else {"dataset_id": value}
        status, body = answer(await owner.get("/dataset/get", params=params))
        assert status == 400 and body["response"].startswith("参数错误"), value
    assert answer(await owner.get("/dataset/get", params={"dataset_id": "2147480000"})) == (
        404,
        {"response": "数据集不存在"},
    )


async def test_get_answers_503_while_the_tasks_service_is_down(manager, platform):
    """Assignments come from the tasks service (tests/tasks_api/test_missions_001.py shows them);
    without it there is no way to tell what is assigned: 503, never a guess."""
    client, _ = manager
    dataset_id = (await upload(client, unique("qa"))).json()["dataset_id"]
    platform.stop_service("tasks")
    try:
        r = await client.get("/dataset/get", params={"dataset_id": dataset_id})
        assert answer(r) == (503, {"response": "服务暂不可用"})
    finally:
        platform.start_service("tasks")
        await platform.wait_ready(f"{platform.service_url('tasks')}/readyz", "tasks")
    r = await client.get("/dataset/get", params={"dataset_id": dataset_id})
    assert r.status_code == 200, r.text
    assert [(a["area"], a["data_size"], a["is_assigned"], a["expert_name"]) for a in r.json()["response"]] == [
        ("法律", 2, False, "-"),
        ("医学", 1, False, "-"),
    ]


async def test_internal_api_for_the_tasks_service(manager, platform):
    client, _ = manager
    dataset_id = (await upload(client, unique("qa"))).json()["dataset_id"]
    async with httpx.AsyncClient(base_url=platform.service_url("dataset"), timeout=10) as direct:
        assert (await direct.get(f"/internal/qa/{dataset_id}")).status_code == 400  # unsigned
        signed = {CALLER_HEADER: sign_caller("tasks", platform.secret)}
        meta = (await direct.get(f"/internal/qa/{dataset_id}", headers=signed)).json()["data"]
        assert meta["areas"] == [{"area": "法律", "data_size": 2}, {"area": "医学", "data_size": 1}]
        records = (
            await direct.get(f"/internal/qa/{dataset_id}/records", params={"area": "法律"}, headers=signed)
        ).json()["data"]
        assert [r["data_question"] for r in records] == ["违约金过高怎么办?", "租房押金不退?"]

        labelled = [{"answer": "协商", "ranking_number": 0, "reserve": 1}]
        r = await direct.put(
            f"/internal/qa/records/{records[0]['data_id']}",
            headers=signed,
            json={"expert_name": "张三", "data_answer": labelled, "data_reserve": 1},
        )
        assert r.status_code == 200, r.text
        r = await direct.put(
            f"/internal/qa/records/{records[0]['data_id']}",
            headers=signed,
            json={"expert_name": "张三", "data_answer": [{"answer": 3}]},
        )
        assert r.status_code == 400
        assigned_at = datetime(2024, 1, 12, 9, 30, tzinfo=UTC).isoformat()
        r = await direct.put(
            f"/internal/qa/{dataset_id}/status", headers=signed, json={"status": "已分配", "assigned_at": assigned_at}
        )
        assert r.status_code == 200, r.text
        assert (
            await direct.put(f"/internal/qa/{dataset_id}/status", headers=signed, json={"status": "done"})
        ).status_code == 400

    listed = next(d for d in (await client.get("/dataset/list")).json()["response"] if d["dataset_id"] == dataset_id)
    assert (listed["status"], listed["dataset_assign_time"]) == ("已分配", "2024/01/12")
    downloaded = (await client.get("/dataset/download", params={"dataset_id": dataset_id})).json()["response"]
    assert (downloaded[0]["expert_name"], downloaded[0]["data_answer"]) == ("张三", labelled)
    assert downloaded[1]["expert_name"] == "-"
