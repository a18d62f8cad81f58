"""Every error code documents 003 lists for /task/* and /review/*, with its message and status."""

from __future__ import annotations

import io
import zipfile

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from services.tasks import distribution
from services.tasks.errors import TagUserNotEnough
from services.tasks.repository import TasksRepository
from services.tasks.settings import TasksSettings
from shared.db import create_engine
from shared.identity import Identity
from tests.tasks_api.conftest import (
    answer_all,
    image_files,
    published,
    task_body,
    upload_texts,
)


def _error(response, code: int, message: str, status: int = 400) -> None:
    body = response.json()
    assert (response.status_code, body["code"], body["message"]) == (status, code, message), response.text


async def test_create_and_modify_errors(people, admin):
    publisher = await people.manager()
    other = await people.manager()
    tagger = await people.annotator()
    files = image_files(2)
    for bad in (
        {"reward_per_q": 0},
        {"reward_per_q": "5"},
        {"time_limit_per_q": -1},
        {"total_time_limit": 1.5},
        {"time_limit_per_q": 100, "total_time_limit": 50},
        {"reward_per_q": True},
    ):
        _error(
            await publisher.client.post("/task/", json=task_body(files, **bad)),
            9,
            "time limit or reward score format error",
        )
    for name in ("abc", "x" * 25, 12345, "    "):
        r = await publisher.client.post("/task/", json=task_body(files, task_name=name))
        _error(r, 13, "task name format error")
    r = await publisher.client.post("/task/", json=task_body(files, strategy="random"))
    assert (r.status_code, r.json()["code"]) == (400, 1005)
    r = await publisher.client.post("/task/", json=task_body([{"filename": "1.txt", "tag": "../etc"}]))
    assert r.json()["code"] == 1005 and "tag" in r.json()["message"]
    r = await publisher.client.post("/task/", json=task_body(files, accept_method="auto"))
    assert r.json()["code"] == 1005 and "standard answers" in r.json()["message"]
    r = await publisher.client.post("/task/", content=b"{not json", headers={"content-type": "application/json"})
    assert (r.status_code, r.json()["code"]) == (400, 1005)
    r = await tagger.client.post("/task/", json=task_body(files))
    _error(r, 1006, "no permission")

    r = await publisher.client.post("/task/", json=task_body(files, reward_per_q=10))
    task_id = r.json()["data"]["task_id"]
    _error(await publisher.client.put("/task/99999999", json=task_body(files)), 11, "task does not exist", 404)
    _error(await other.client.put(f"/task/{task_id}", json=task_body(files)), 12, "no permission to modify")
    _error(
        await publisher.client.put(f"/task/{task_id}", json=task_body(files, reward_per_q=-1)),
        9,
        "time limit or reward score format error",
    )
    _error(
        await publisher.client.put(f"/task/{task_id}", json=task_body(files, task_name="no")),
        13,
        "task name format error",
    )
    # 2 questions x 1 annotator x 10 points: a requester with no points cannot afford the change.
    _error(
        await publisher.client.put(f"/task/{task_id}", json=task_body(files, reward_per_q=20)), 10, "score not enough"
    )
    await people.fund(publisher, 10)  # 100 points
    r = await publisher.client.put(f"/task/{task_id}", json=task_body(image_files(3), reward_per_q=20))
    assert r.json()["data"] == {"task_id": task_id, "q_num": 3, "check_result": "wait"}

    # Distribution's errors.
    _error(await publisher.client.post("/task/distribute/99999999"), 14, "task not created")
    _error(await other.client.post(f"/task/distribute/{task_id}"), 15, "no distribute permission")
    _error(await publisher.client.post(f"/task/distribute/{task_id}"), 34, "task not checked")
    assert (await admin.post(f"/task/check_task/{task_id}", json={"result": "refuse"})).json()["code"] == 0
    _error(await publisher.client.post(f"/task/distribute/{task_id}"), 33, "refused task")
    _error(await admin.post(f"/task/check_task/{task_id}", json={"result": "accept"}), 51, "recheck")
    r = await publisher.client.post(f"/task/check_task/{task_id}", json={"result": "accept"})
    assert r.json()["code"] == 1006  # only admins check tasks
    # Modifying a refused task sends it back to the admin.
    r = await publisher.client.put(f"/task/{task_id}", json=task_body(image_files(3), reward_per_q=20))
    assert r.json()["data"]["check_result"] == "wait"
    assert (await admin.post(f"/task/check_task/{task_id}", json={"result": "accept"})).json()["code"] == 0
    assert (await publisher.client.post(f"/task/distribute/{task_id}")).json()["data"] == {
        "distributed": 0,
        "vacancies": 1,
    }  # toall: a pool, nobody chosen
    _error(await publisher.client.post(f"/task/distribute/{task_id}"), 23, "task has been distributed")
    _error(await publisher.client.put(f"/task/{task_id}", json=task_body(files)), 12, "no permission to modify")
    _error(await publisher.client.get("/task/is_distributed/99999999"), 14, "task not created", 404)
    _error(await publisher.client.post("/task/redistribute/99999999"), 14, "task not created", 404)
    _error(await other.client.post(f"/task/redistribute/{task_id}"), 15, "no distribute permission")

    # Deleting.
    _error(await publisher.client.delete("/task/99999999"), 11, "task does not exist", 404)
    _error(await other.client.delete(f"/task/{task_id}"), 12, "no permission to delete")
    assert (await publisher.client.get("/task/get_all_tasks")).json()["code"] == 1006
    assert (await publisher.client.delete(f"/task/{task_id}")).json()["code"] == 0
    _error(await publisher.client.get(f"/task/{task_id}"), 11, "task does not exist", 404)


async def test_labelling_and_review_errors(people, admin):
    publisher = await people.manager()
    await people.fund(publisher, 20)
    worker, outsider = await people.annotators(2)
    files = await upload_texts(publisher.client, ["one", "two", "three"])
    task_id = await published(admin, publisher, task_body(files, distribute_user_num=1))
    _error(await outsider.client.get(f"/task/{task_id}"), 16, "no access permission")
    _error(await outsider.client.get(f"/task/{task_id}/1"), 16, "no access permission")
    _error(await publisher.client.get("/task/99999999"), 11, "task does not exist", 404)
    _error(await publisher.client.get(f"/task/{task_id}/99"), 13, "question does not exist", 404)
    _error(await publisher.client.get("/task/99999999/1"), 11, "task does not exist", 404)
    assert (await publisher.client.get(f"/task/{task_id}/2")).json()["data"]["data"] == ["two"]
    _error(await outsider.client.get(f"/task/taginfo/{task_id}"), 16, "no access permission")
    _error(await outsider.client.get(f"/task/get_batch_data/{task_id}"), 16, "no access permission")
    _error(
        await outsider.client.post(f"/task/upload_res/{task_id}/1", json={"result": "cat"}), 16, "no access permission"
    )
    # The review routes, before any work: not distributed, not the publisher, no such task.
    for path in (f"/review/accept/{task_id}/{worker.user_id}", f"/review/refuse/{task_id}/{worker.user_id}"):
        _error(await outsider.client.post(path), 16, "no permissions")
        _error(await publisher.client.post(path.replace(str(task_id), "99999999")), 14, "task not created", 404)
    _error(
        await outsider.client.post(f"/review/manual_check/{task_id}/{worker.user_id}", json={"check_method": "all"}),
        16,
        "no permissions",
    )
    _error(await outsider.client.get(f"/review/download/{task_id}"), 16, "no permissions")
    _error(await publisher.client.get("/review/download/99999999"), 14, "task not created", 404)
    _error(await publisher.client.get(f"/review/download/99999999/{worker.user_id}"), 14, "task not created", 404)
    _error(await outsider.client.get(f"/review/download/{task_id}/{worker.user_id}"), 16, "no permissions")
    undistributed = await published(admin, publisher, task_body(image_files(1)), distribute=False)
    _error(
        await publisher.client.post(
            f"/review/manual_check/{undistributed}/{worker.user_id}", json={"check_method": "all"}
        ),
        24,
        "task not distributed",
    )
    _error(await publisher.client.post(f"/review/accept/{undistributed}/{worker.user_id}"), 24, "task not distributed")
    _error(await publisher.client.post(f"/review/refuse/{undistributed}/{worker.user_id}"), 24, "task not distributed")
    _error(await publisher.client.get(f"/review/download/{undistributed}"), 24, "task not distributed")
    _error(await publisher.client.get(f"/review/download/{undistributed}/{worker.user_id}"), 24, "task not distributed")
    _error(await publisher.client.post(f"/task/redistribute/{undistributed}"), 24, "task not distributed")
    _error(
        await publisher.client.post(f"/review/accept/{task_id}/{worker.user_id}"),
        34,
        "user is not this task's tagger",
        404,
    )
    _error(await publisher.client.post("/review/report/99999999/1", json={"reason": "x"}), 33, "task not exists")

    # Batch answers: the archive with its upload.csv template, then each documented CSV error.
    assert (await worker.client.post(f"/task/accept/{task_id}")).json()["code"] == 0
    r = await worker.client.get(f"/task/get_batch_data/{task_id}")
    assert r.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    assert archive.read("data/2.txt") == b"two"
    assert archive.read("upload.csv").decode().splitlines() == ["filename,tag", "1.txt,", "2.txt,", "3.txt,"]

    async def batch(text: str):
        return await worker.client.post(
            f"/task/upload_res/{task_id}", files={"file": ("upload.csv", text.encode(), "text/csv")}
        )

    _error(await batch("filename,label\n1.txt,cat\n"), 71, "missing field name")
    _error(await batch("filename,tag\n9.txt,cat\n"), 73, "wrong filename")
    _error(await batch("filename,tag\n1.txt,cow\n"), 74, "wrong tag name")
    r = await batch("filename,tag\n1.txt,cat\n2.txt,\n")
    assert r.json()["data"] == {"stored": 1, "skipped": 0, "answered": 1, "q_num": 3}
    r = await batch("filename,tag\n1.txt,dog\n2.txt,dog\n3.txt,bird\n")
    assert r.json()["data"] == {"stored": 2, "skipped": 1, "answered": 3, "q_num": 3}
    question = (await publisher.client.get(f"/task/{task_id}/1")).json()["data"]
    assert [x["tag_res"] for x in question["result"]] == ["cat"]  # the first answer stands
    free_form = await published(admin, publisher, task_body(image_files(1), tag_type=[]))
    assert (await worker.client.post(f"/task/accept/{free_form}")).json()["code"] == 0
    r = await worker.client.post(
        f"/task/upload_res/{free_form}", files={"file": ("upload.csv", b"filename,tag\n1.jpg,x\n", "text/csv")}
    )
    _error(r, 72, "invalid task type")


async def test_accept_limit_by_membership(people, admin):
    publisher = await people.manager()
    await people.fund(publisher, 20)
    busy = await people.annotator()
    tasks = [await published(admin, publisher, task_body(image_files(1))) for _ in range(4)]
    for task_id in tasks[:3]:
        assert (await busy.client.post(f"/task/accept/{task_id}")).json()["code"] == 0
    # An annotator without membership has 3 tasks on hand at most.
    _error(await busy.client.post(f"/task/accept/{tasks[3]}"), 30, "accept limit")
    await answer_all(busy, tasks[0], {1: "cat"})
    assert (await busy.client.post(f"/task/accept/{tasks[3]}")).json()["code"] == 0
    _error(await publisher.client.post(f"/task/accept/{tasks[3]}"), 18, "no permission to accept")


class NoAnnotators:
    """An auth with no annotator to offer (the shared test database always has some)."""

    def __init__(self, publisher_id: int) -> None:
        self.publisher_id = publisher_id

    async def user(self, user_id: int) -> dict:
        return {"user_id": user_id, "user_type": "demand", "is_checked": True, "is_banned": False}

    async def annotators(self) -> list[dict]:
        return []

    async def hold(self, *args: object) -> None:
        return None


async def test_redistribute_without_annotators_is_code_21(people, admin, backing):
    publisher = await people.manager()
    task_id = await published(admin, publisher, task_body(image_files(1), strategy="order"), distribute=False)
    engine = create_engine(backing.database_url, "tests")
    identity = Identity(publisher.user_id, publisher.user_name, "demand")
    try:
        async with async_sessionmaker(engine)() as session:
            repo = TasksRepository(session)
            auth = NoAnnotators(publisher.user_id)
            settings = TasksSettings()
            result = await distribution.distribute(repo, auth, settings, identity, task_id)  # type: ignore[arg-type]
            assert result == {"distributed": 0, "vacancies": 1}
            with pytest.raises(TagUserNotEnough) as raised:
                await distribution.redistribute(repo, auth, settings, identity, task_id)  # type: ignore[arg-type]
            assert (raised.value.code, raised.value.message) == (21, "tag user not enough")
            await session.rollback()
    finally:
        await engine.dispose()
