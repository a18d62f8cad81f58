"""A task as large as 003's body allows: tens of thousands of questions in one create or modify body
(more than the 1 MB most JSON routes take), with standard answers on the questions they name."""

from __future__ import annotations

import json

from tests.tasks_api.conftest import task_body

QUESTIONS = 8_000  # with long file names, about 1.3 MB of JSON (and 8,001 points, what 1,000 yuan buy)
PADDING = "-" + "x" * 120


def text_files(count: int) -> list[dict[str, str]]:
    """Text questions by id (the tasks service keeps the reference; nothing fetches it here)."""
    return [{"filename": f"{i}{PADDING}.txt", "tag": str(1_000_000 + i)} for i in range(1, count + 1)]


async def test_a_task_body_larger_than_a_megabyte_creates_and_modifies_the_task(people, db):
    publisher = await people.manager()
    await people.fund(publisher, 1_000)
    body = task_body(text_files(QUESTIONS), reward_per_q=1)
    assert len(json.dumps(body)) > 1024 * 1024
    r = await publisher.client.post("/task/", json=body)
    assert r.status_code == 200 and r.json()["code"] == 0, r.text[:300]
    task_id = r.json()["data"]["task_id"]
    assert r.json()["data"]["q_num"] == QUESTIONS
    rows = await db.fetch(
        "SELECT q_id, filename, tag, data_type FROM tasks.questions WHERE task_id = $1 "
        "AND q_id IN (1, $2) ORDER BY q_id",
        task_id,
        QUESTIONS,
    )
    assert [tuple(row) for row in rows] == [
        (1, f"1{PADDING}.txt", "1000001", "text"),
        (QUESTIONS, f"{QUESTIONS}{PADDING}.txt", str(1_000_000 + QUESTIONS), "text"),
    ]

    # A standard answer for two of the files: the edit stores it on exactly those questions.
    csv = f"filename,tag\n2{PADDING}.txt,cat\n7{PADDING}.txt,dog\n"
    r = await publisher.client.post("/review/upload_stdans", files={"file": ("std.csv", csv, "text/csv")})
    assert r.json()["code"] == 0, r.text
    stdans_tag = r.json()["data"]["tag"]
    body = task_body(text_files(QUESTIONS + 1), reward_per_q=1, stdans_tag=stdans_tag, accept_method="auto")
    r = await publisher.client.put(f"/task/{task_id}", json=body)
    assert r.status_code == 200 and r.json()["code"] == 0, r.text[:300]
    assert r.json()["data"]["q_num"] == QUESTIONS + 1
    assert await db.fetchval("SELECT count(*) FROM tasks.questions WHERE task_id = $1", task_id) == QUESTIONS + 1
    standard = await db.fetch(
        "SELECT q_id, std_answer FROM tasks.questions WHERE task_id = $1 AND std_answer IS NOT NULL ORDER BY q_id",
        task_id,
    )
    assert [tuple(row) for row in standard] == [(2, "cat"), (7, "dog")]
