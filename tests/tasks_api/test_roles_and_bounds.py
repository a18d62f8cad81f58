"""Who may call comes before what the body holds; free text and numbers have bounds; 001's types."""

from __future__ import annotations

import pytest

from tests.tasks_api.conftest import image_files, published, task_body

MALFORMED = (b"{not json", b"[1, 2]", b'{"files": "nope", "reward_per_q": {}}', b"")


def _code(response) -> tuple[int, int]:
    return response.status_code, response.json()["code"]


@pytest.mark.parametrize("raw", MALFORMED)
async def test_the_role_is_checked_before_the_body(people, admin, raw):
    publisher = await people.manager()
    tagger = await people.annotator()
    task_id = await published(admin, publisher, task_body(image_files(1)), distribute=False)
    json_type = {"Content-Type": "application/json"}
    cases = [
        (tagger, "POST", "/task/", (400, 1006)),
        (tagger, "PUT", f"/task/{task_id}", (400, 12)),
        (publisher, "POST", f"/task/check_task/{task_id}", (400, 1006)),
        (tagger, "POST", f"/task/to_agent/{task_id}", (400, 15)),
        (publisher, "POST", f"/task/upload_res/{task_id}/1", (400, 16)),
        (tagger, "POST", f"/review/manual_check/{task_id}/{tagger.user_id}", (400, 16)),
    ]
    for member, method, path, expected in cases:
        r = await member.client.request(method, path, content=raw, headers=json_type)
        assert _code(r) == expected, (path, r.text)
    # The multipart routes, with a body that is no form at all.
    r = await publisher.client.post(
        f"/task/upload_res/{task_id}", content=raw, headers={"Content-Type": "multipart/form-data; boundary=x"}
    )
    assert _code(r) == (400, 16), r.text
    r = await tagger.client.post(
        "/review/upload_stdans", content=raw, headers={"Content-Type": "multipart/form-data; boundary=x"}
    )
    assert _code(r) == (400, 1006), r.text
    # 001: 非管理员用户 / 非专家用户 whatever the body.
    for path, method in (("/task/assign", "POST"), ("/task/reassign", "PUT"), ("/task/urgent", "POST")):
        r = await tagger.client.request(method, path, content=raw, headers=json_type)
        assert (r.status_code, r.json()) == (403, {"response": "非管理员用户"}), (path, r.text)
    r = await publisher.client.put("/data/label", content=raw, headers=json_type)
    assert (r.status_code, r.json()) == (403, {"response": "非专家用户"}), r.text


async def test_the_role_is_checked_before_the_path(people):
    """A caller of the wrong role learns nothing from a malformed id: the route's permission answer, not a 400/404."""
    tagger = await people.annotator()
    for method, path, expected in (
        ("POST", "/task/check_task/0", (400, 1006)),
        ("POST", "/task/check_task/not-an-id", (400, 1006)),
        ("POST", "/task/to_agent/not-an-id", (400, 15)),
    ):
        r = await tagger.client.request(method, path)
        assert _code(r) == expected, (path, r.text)


async def test_the_body_is_still_validated_for_the_right_role(people, admin):
    publisher = await people.manager()
    r = await publisher.client.post("/task/", content=b"{not json", headers={"Content-Type": "application/json"})
    assert _code(r) == (400, 1005) and "JSON" in r.json()["message"], r.text
    r = await admin.post("/task/check_task/1", json={"result": "x" * 17})
    assert _code(r) == (400, 1005), r.text


async def test_is_distributed_answers_only_the_publisher_and_admins(people, admin):
    publisher = await people.manager()
    stranger = await people.manager()
    tagger = await people.annotator()
    task_id = await published(admin, publisher, task_body(image_files(1)), distribute=False)
    for client in (publisher.client, admin):
        r = await client.get(f"/task/is_distributed/{task_id}")
        assert r.json() == {"code": 0, "message": "success", "data": {"is_distributed": False}}, r.text
    for member in (stranger, tagger):
        r = await member.client.get(f"/task/is_distributed/{task_id}")
        assert (r.status_code, r.json()) == (404, {"code": 14, "message": "task not created", "data": {}}), r.text


async def test_free_text_fields_have_maximum_lengths(people, admin):
    publisher = await people.manager()
    tagger = await people.annotator()
    files = image_files(1)
    for bad in (
        {"tag_type": ["c" * 257]},
        {"input_type": ["i" * 257]},
        {"cut_num": "9" * 17},
        {"strategy": "s" * 17},
        {"accept_method": "m" * 17},
        {"task_style": "d" * 10_001},
    ):
        r = await publisher.client.post("/task/", json=task_body(files, **bad))
        assert _code(r) == (400, 1005), (bad, r.text)
        assert "at most" in r.json()["message"], r.text
    await people.fund(publisher, 10)
    task_id = await published(admin, publisher, task_body(image_files(1)))
    assert (await tagger.client.post(f"/task/accept/{task_id}")).json()["code"] == 0
    r = await tagger.client.post(f"/task/upload_res/{task_id}/1", json={"result": "a" * 70_000})
    assert _code(r) == (400, 1005) and "result" in r.json()["message"], r.text
    r = await tagger.client.post(f"/task/upload_res/{task_id}/1", json={"result": "ok", "input_result": ["b" * 70_000]})
    assert _code(r) == (400, 1005) and "input_result" in r.json()["message"], r.text
    r = await tagger.client.post(f"/task/upload_res/{task_id}/1", json={"result": "cat"})
    assert r.json()["code"] == 0, r.text
    r = await publisher.client.post(f"/review/report/{task_id}/{tagger.user_id}", json={"reason": "r" * 2001})
    assert _code(r) == (400, 1005), r.text


@pytest.mark.parametrize("due", ["1e300", "-1e300", "1" + "0" * 400, "NaN", "Infinity", '"9999999-01-01"'])
async def test_out_of_range_due_times_are_a_4xx(people, due):
    manager = await people.manager()
    body = f'{{"dataset_id": 1, "area": "general", "expert_id_list": [1], "due_time": {due}}}'
    r = await manager.client.post("/task/assign", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and set(r.json()) == {"response"}, r.text
    assert "due_time" in r.json()["response"], r.text
