"""Consolidated answers: majority vote, and Dawid-Skene where the majority is wrong but the reliable
annotators are right; through the whole-task download and on the EM itself."""

from __future__ import annotations

import csv
import io

from services.tasks.quality import (
    answer_key,
    canonical,
    cell_answer,
    consolidate,
    majority,
)
from tests.tasks_api.conftest import answer_all, image_files, published, task_body

LABELS = ["cat", "dog", "bird"]


def constructed_case() -> tuple[dict[int, str], dict[str, dict[int, str]]]:
    """20 questions. `good1` and `good2` are always right. `spam1..3` agree on the same wrong label on
    questions 1-4 (so the majority is wrong there) and scatter elsewhere, mostly wrong."""
    truth = {q: LABELS[q % 3] for q in range(1, 21)}
    answers: dict[str, dict[int, str]] = {"good1": {}, "good2": {}, "spam1": {}, "spam2": {}, "spam3": {}}
    for q, right in truth.items():
        wrong = [label for label in LABELS if label != right]
        answers["good1"][q] = answers["good2"][q] = right
        if q <= 4:
            for spam in ("spam1", "spam2", "spam3"):
                answers[spam][q] = wrong[0]
        else:
            answers["spam1"][q] = wrong[q % 2]
            answers["spam2"][q] = wrong[(q + 1) % 2]
            answers["spam3"][q] = right if q % 3 == 0 else wrong[0]
    return truth, answers


def test_dawid_skene_beats_a_wrong_majority():
    truth, answers = constructed_case()
    ids = {name: i for i, name in enumerate(answers, start=1)}
    votes, ds, accuracy, iterations = consolidate(
        [(q, ids[name], label) for name, by_q in answers.items() for q, label in by_q.items()]
    )
    assert iterations > 0
    assert [votes[q].answer == truth[q] for q in (1, 2, 3, 4)] == [False] * 4
    assert {q: ds[q][0] for q in truth} == truth
    assert all(ds[q][1] > 0.9 for q in (1, 2, 3, 4))
    assert accuracy[ids["good1"]] > 0.95 and accuracy[ids["good2"]] > 0.95
    assert max(accuracy[ids[s]] for s in ("spam1", "spam2", "spam3")) < 0.5


def test_majority_and_canonical_answers():
    assert majority(["a", "b", "b", "a"]).answer == "a"  # a tie goes to the first answer given
    assert canonical([{"input_type": "x", "tag_result": [" cat "]}]) == "cat"
    assert canonical(["a", "b"]) == '["a","b"]'
    assert cell_answer('["a", "b"]') == '["a","b"]' and cell_answer(" dog ") == "dog"
    assert answer_key("cat", [{"input_type": "note", "input_res": "x"}]) != answer_key("cat")
    # Fewer than three answers per question: no Dawid-Skene; accuracy is agreement with the majority.
    votes, ds, accuracy, iterations = consolidate([(1, 1, "a"), (1, 2, "b"), (2, 1, "a"), (2, 2, "a")])
    assert (ds, iterations) == ({}, 0)
    assert accuracy == {1: 1.0, 2: 0.5}


async def test_whole_task_download_with_dawid_skene(people, admin):
    publisher = await people.manager()
    await people.fund(publisher, 20)
    truth, answers = constructed_case()
    members = dict(zip(answers, await people.annotators(5), strict=True))
    task_id = await published(admin, publisher, task_body(image_files(20), distribute_user_num=5, reward_per_q=1))
    for name, member in members.items():
        assert (await member.client.post(f"/task/accept/{task_id}")).json()["code"] == 0
        await answer_all(member, task_id, answers[name])
        assert (await publisher.client.post(f"/review/accept/{task_id}/{member.user_id}")).json()["code"] == 0

    r = await publisher.client.get(f"/review/download/{task_id}")
    rows = list(csv.reader(io.StringIO(r.text)))
    header, body = rows[0], {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    for q, right in truth.items():
        assert body[str(q)]["dawid_skene_answer"] == right
        assert body[str(q)]["answers"] == "5"
    assert [body[str(q)]["majority_answer"] == truth[q] for q in (1, 2, 3, 4)] == [False] * 4
    accuracy = body["annotator_accuracy"]
    column = {name: f"{m.user_name} ({m.user_id})" for name, m in members.items()}
    assert set(column.values()) <= set(header)
    assert float(accuracy[column["good1"]]) > 0.95 and float(accuracy[column["good2"]]) > 0.95
    assert all(float(accuracy[column[s]]) < 0.5 for s in ("spam1", "spam2", "spam3"))
    assert body["1"][column["spam1"]] == answers["spam1"][1]
    # `type=all` also shows answers not (yet) accepted; an unknown type is a 400.
    assert (await publisher.client.get(f"/review/download/{task_id}", params={"type": "all"})).status_code == 200
    assert (await publisher.client.get(f"/review/download/{task_id}", params={"type": "x"})).json()["code"] == 1005
    # An admin may download any task.
    assert (await admin.get(f"/review/download/{task_id}")).text == r.text
