"""Document 001's expert labelling through the gateway: a manager splits an area of a Q&A dataset among
experts, urges and hands missions over; experts list and label their records; the dataset service
learns who labels what (its /dataset/get) and the labels themselves."""

from __future__ import annotations

import json

from tests.conftest import gateway_client, unique
from tests.helpers import eventually


def _records(area: str, count: int) -> list[dict]:
    return [
        {
            "data_background": f"{area} background {i}",
            "data_question": f"{area} question {i}?",
            "data_answer": [
                {"answer": f"answer {i}a", "ranking_number": 0, "reserve": 1},
                {"answer": f"answer {i}b", "ranking_number": 1, "reserve": 1},
            ],
            "data_area": area,
            "data_keyword": f"kw{i}",
            "other": "",
        }
        for i in range(count)
    ]


async def _dataset(manager) -> int:
    body = {
        "dataset_name": unique("qa"),
        "dataset_task_type": "问答排序",
        "dataset_source": "001 test",
        "dataset_json": json.dumps(_records("law", 5) + _records("med", 2), ensure_ascii=False),
    }
    r = await manager.client.post("/dataset/upload", json=body)
    assert r.json()["response"] == "success", r.text
    return r.json()["dataset_id"]


def _ranked(record_id: int) -> list[dict]:
    return [
        {"answer": f"best for {record_id}", "ranking_number": 0, "reserve": 1},
        {"answer": "second", "ranking_number": 1, "reserve": 0},
    ]


async def _label(expert, record_id: int) -> None:
    r = await expert.client.put(
        "/data/label",
        json={
            "data_id": record_id,
            "data_question": f"edited {record_id}",
            "data_answer": _ranked(record_id),
            "data_reserve": 1,
        },
    )
    assert r.json() == {"response": "success"}, r.text


async def _areas(manager, dataset_id: int) -> dict[str, dict]:
    r = await manager.client.get("/dataset/get", params={"dataset_id": dataset_id})
    return {a["area"]: a for a in r.json()["response"]}


async def _mine(expert) -> list[dict]:
    return (await expert.client.get("/task/list")).json()["response"]


async def test_manager_and_expert_flows(people, platform):
    manager = await people.manager()
    e1, e2, e3 = [await people.annotator("law") for _ in range(3)]
    dataset_id = await _dataset(manager)
    areas = await _areas(manager, dataset_id)
    assert (areas["law"]["is_assigned"], areas["law"]["expert_name"]) == (False, "-")

    # Who may do what, in 001's words.
    async with gateway_client(platform) as anonymous:
        r = await anonymous.get("/task/list")
        assert (r.status_code, r.json()) == (401, {"response": "请先登录"})
        r = await anonymous.get("/data/list", params={"mission_id": 1})
        assert (r.status_code, r.json()) == (401, {"response": "未登录"})
        r = await anonymous.post("/task/assign", json={})
        assert (r.status_code, r.json()) == (401, {"response": "未登录"})
    assign = {
        "dataset_id": dataset_id,
        "area": "law",
        "expert_id_list": [e1.user_id, e2.user_id],
        "notice": "rank by helpfulness",
        "due_time": "2099/01/31",
    }
    r = await e1.client.post("/task/assign", json=assign)
    assert (r.status_code, r.json()) == (403, {"response": "非管理员用户"})
    r = await manager.client.get("/data/list", params={"mission_id": 1})
    assert (r.status_code, r.json()) == (403, {"response": "非专家用户"})
    r = await manager.client.post("/task/assign", json={**assign, "expert_id_list": [manager.user_id]})
    assert r.status_code == 400 and r.json()["response"].startswith("分配失败,专家不存在")

    # The area is split among the two experts: 3 and 2 records.
    r = await manager.client.post("/task/assign", json=assign)
    assert r.json()["response"] == "success", r.text
    first, second = r.json()["mission_ids"]
    r = await manager.client.post("/task/assign", json=assign)
    assert r.status_code == 400 and r.json()["response"].startswith("分配失败,该领域已分配")
    areas = await _areas(manager, dataset_id)
    assert areas["law"]["is_assigned"] and set(areas["law"]["expert_name"].split(",")) == {e1.user_name, e2.user_name}
    assert not areas["med"]["is_assigned"]

    listed = {m["task_id"]: m for m in (await manager.client.get("/task/list")).json()["response"]}
    assert listed[first]["status"] == "已分配" and listed[first]["expert_name"] == e1.user_name
    assert (listed[first]["total_count"], listed[second]["total_count"]) == (3, 2)
    assert listed[first]["due_time"] == "2099/01/31 23:59"
    mine = await _mine(e1)
    assert [(m["task_id"], m["status"], m["area"], m["total_count"]) for m in mine] == [(first, "未开始", "law", 3)]

    data = (await e1.client.get("/data/list", params={"mission_id": first})).json()
    assert data["notice"] == "rank by helpfulness"
    records = data["response"]
    assert [r["question"] for r in records] == [f"law question {i}?" for i in range(3)]
    assert records[0]["is_labeled"] == 0 and records[0]["task_type"] == "问答排序"
    assert records[0]["answer"][0]["answer"] == "answer 0a"
    r = await e2.client.get("/data/list", params={"mission_id": first})
    assert (r.status_code, r.json()) == (404, {"response": "任务不存在"})

    # E1 labels one record, gets urged, and the rest of the mission is handed over to E3.
    await _label(e1, records[0]["data_id"])
    r = await e2.client.put("/data/label", json={"data_id": records[1]["data_id"], "data_answer": []})
    assert r.status_code == 404
    data = (await e1.client.get("/data/list", params={"mission_id": first})).json()["response"]
    assert [r["is_labeled"] for r in data] == [1, 0, 0]
    assert (await _mine(e1))[0]["status"] == "未完成"
    assert (await manager.client.post("/task/urgent", json={"mission_id": first})).json() == {"response": "success"}
    assert (await _mine(e1))[0]["is_highlight"] == 1
    r = await manager.client.put(
        "/task/reassign",
        json={
            "mission_id": first,
            "expert_id_list": [e3.user_id],
            "mission_notice": "please finish",
            "mission_due_time": "2099-02-15 12:00",
        },
    )
    assert r.json()["response"] == "success", r.text
    (third,) = r.json()["mission_ids"]
    r = await manager.client.put("/task/reassign", json={"mission_id": first, "expert_id_list": [e3.user_id]})
    assert r.status_code == 400 and r.json()["response"].startswith("移交失败")
    assert await _mine(e1) == []  # handed over
    r = await e1.client.put("/data/label", json={"data_id": records[1]["data_id"], "data_answer": []})
    assert r.status_code == 404
    history = (await manager.client.get("/task/list-by-dataset", params={"dataset_id": dataset_id})).json()["response"]
    for entry in history:  # 001: every field but the two counts is a string
        assert all(isinstance(v, str) for k, v in entry.items() if k not in ("finished_count", "total_count")), entry
        assert isinstance(entry["finished_count"], int) and isinstance(entry["total_count"], int), entry
    history = {int(m["mission_id"]): m for m in history}
    first_entry = history[first]
    assert (first_entry["status"], first_entry["finished_count"], first_entry["total_count"]) == ("已移交", 1, 1)
    assert (history[third]["status"], history[third]["original_id"], history[third]["total_count"]) == (
        "标注中",
        str(first),
        2,
    )
    assert history[second]["original_id"] == "-"
    data = (await e3.client.get("/data/list", params={"mission_id": third})).json()
    assert data["notice"] == "please finish" and [r["data_id"] for r in data["response"]] == [
        records[1]["data_id"],
        records[2]["data_id"],
    ]

    # Everyone finishes; the med area goes to E2; the dataset is complete once all is labelled.
    for record in data["response"]:
        await _label(e3, record["data_id"])
    for record in (await e2.client.get("/data/list", params={"mission_id": second})).json()["response"]:
        await _label(e2, record["data_id"])
    r = await manager.client.post("/task/assign", json={**assign, "area": "med", "expert_id_list": [e2.user_id]})
    (med,) = r.json()["mission_ids"]
    for record in (await e2.client.get("/data/list", params={"mission_id": med})).json()["response"]:
        await _label(e2, record["data_id"])
    statuses = {m["task_id"]: m["status"] for m in (await manager.client.get("/task/list")).json()["response"]}
    assert [statuses[m] for m in (first, second, third, med)] == ["已移交", "已完成", "已完成", "已完成"]
    areas = await _areas(manager, dataset_id)
    assert set(areas["law"]["expert_name"].split(",")) == {e2.user_name, e3.user_name}

    async def dataset_complete() -> bool:
        listed = (await manager.client.get("/dataset/list")).json()["response"]
        return next(d["status"] for d in listed if d["dataset_id"] == dataset_id) == "已完成"

    await eventually(dataset_complete, what="the dataset's status 已完成")
    downloaded = (await manager.client.get("/dataset/download", params={"dataset_id": dataset_id})).json()["response"]
    by_question = {d["data_question"]: d for d in downloaded}
    labelled = by_question[f"edited {records[0]['data_id']}"]
    assert labelled["expert_name"] == e1.user_name and labelled["data_answer"][0]["answer"].startswith("best for")
    assert {d["expert_name"] for d in downloaded} == {e1.user_name, e2.user_name, e3.user_name}
