"""The console's other roles in a real browser: a requester delegates a task to an agent who hands it to
an annotator; the admin's cards list tasks waiting for a check and open reports; a requester reads the
majority and Dawid-Skene results and downloads them. And every text the pages show has both languages."""

from __future__ import annotations

import re

from shared.launcher import ROOT
from tests.conftest import ADMIN_PASSWORD, ADMIN_USER, unique
from tests.console.conftest import shot, sign_in
from tests.tasks_api.conftest import PASSWORD, answer_all, published, task_body, task_view, upload_texts

STATIC_JS = ROOT / "services" / "console" / "static" / "js"


async def test_agent_hands_a_delegated_task_to_an_annotator(platform, mailbox, people, admin, open_page):
    requester = await people.manager()
    await people.fund(requester, 10)
    agent = await people.agent(mailbox)
    annotator = await people.annotator()
    name = unique("动物识别 ")  # the annotator works in Chinese: so does the task
    files = await upload_texts(requester.client, ["一只猫在沙发上睡觉。", "小狗追着球跑过草地。"])
    task_id = await published(
        admin,
        requester,
        task_body(files, task_name=name, task_style="文中说的是哪种动物？", tag_type=["猫", "狗"]),
        distribute=False,
    )

    # The requester delegates the checked task to the agent.
    publisher = await open_page()
    await sign_in(publisher, requester.user_name, PASSWORD)
    await publisher.select_option(f'[data-agent-for="{task_id}"]', str(agent.user_id))
    await publisher.click(f'[data-delegate="{task_id}"]')
    await publisher.wait_for_selector(f"text=Delegated to agent {agent.user_name}")
    assert (await task_view(requester.client, task_id))["agent"]["user_id"] == agent.user_id

    # The agent finds it on their home page and hands it to the annotator.
    desk = await open_page()
    await sign_in(desk, agent.user_name, PASSWORD)
    card = desk.locator("#agent-tasks .card", has_text=name)
    await card.wait_for()
    assert "0 of 1 annotators given" in await card.inner_text()
    await desk.select_option(f'[data-annotator-for="{task_id}"]', str(annotator.user_id))
    await desk.click(f'[data-give="{task_id}"]')
    await desk.wait_for_selector("#agent-notice .alert-success")
    await card.locator(f"td:has-text('{annotator.user_name}')").wait_for()
    text = await card.inner_text()
    assert "1 of 1 annotators given" in text and "Offered, not accepted yet" in text
    assert await card.locator(f'[data-give="{task_id}"]').count() == 0  # every slot is given
    await shot(desk, "agent")
    entries = (await task_view(requester.client, task_id))["current_tag_user_list"]
    assert [(e["tag_user"]["user_id"], e["state"]) for e in entries] == [(annotator.user_id, "not_handle")]

    # The annotator (in Chinese) sees it offered, accepts it and labels by keyboard.
    worker = await open_page(locale="zh-CN")
    await sign_in(worker, annotator.user_name, PASSWORD)
    offered = worker.locator("#my-tasks .card", has_text=name)
    await offered.wait_for()
    await shot(worker, "tasks-zh")
    await offered.locator("button", has_text="接受").click()
    await worker.wait_for_selector(".choices")
    await worker.keyboard.press("2")
    await worker.wait_for_selector(".choice.chosen:has-text('狗')")
    await shot(worker, "workspace-zh")
    await worker.keyboard.press("Enter")
    await worker.wait_for_selector("#q-counter:has-text('2 / 2')")
    await worker.keyboard.press("1")
    await worker.keyboard.press("Enter")
    await worker.wait_for_selector(".work-status .alert-success")
    answers = [
        (await annotator.client.get(f"/task/{task_id}/{q}")).json()["data"]["result"][0]["tag_res"] for q in (1, 2)
    ]
    assert answers == ["狗", "猫"]

    # Its card in the task list says it waits for review, and nothing else stray (no lone "0").
    await worker.goto("/#/tasks")
    done = worker.locator("#my-tasks .card", has_text=name)
    await done.wait_for()
    lines = [line.strip() for line in (await done.inner_text()).splitlines() if line.strip()]
    assert "等待审核" in lines and "0" not in lines, lines


async def test_admin_cards_list_tasks_waiting_for_a_check_and_open_reports(platform, people, admin, open_page):
    requester = await people.manager()
    await people.fund(requester, 10)
    annotator = await people.annotator()
    files = await upload_texts(requester.client, ["one", "two"])
    reported = await published(admin, requester, task_body(files))
    assert (await annotator.client.post(f"/task/accept/{reported}")).json()["code"] == 0
    await answer_all(annotator, reported, {1: "cat", 2: "dog"})
    reason = unique("copied answers ")
    r = await requester.client.post(f"/review/report/{reported}/{annotator.user_id}", json={"reason": reason})
    assert r.json()["code"] == 0, r.text
    r = await requester.client.post("/task/", json=task_body(files, task_name=unique("to check ")))
    waiting = r.json()["data"]["task_id"]

    page = await open_page()
    await sign_in(page, ADMIN_USER, ADMIN_PASSWORD)
    waiting_row = page.locator(f'#admin-tasks tr[data-task="{waiting}"]')
    report_row = page.locator(f'#admin-reports tr[data-report-task="{reported}"]', has_text=reason)
    await waiting_row.wait_for()
    await report_row.wait_for()
    assert await page.locator("#main [aria-busy]").count() == 0
    # The action cells stay table cells, so each row's border runs to the table's edge.
    displays = await page.eval_on_selector_all("td.row-actions", "cells => cells.map(c => getComputedStyle(c).display)")
    assert displays and set(displays) == {"table-cell"}

    await waiting_row.locator("button", has_text="Approve").click()
    await page.locator(f'#admin-tasks tr[data-task="{waiting}"] .badge-success').wait_for()
    assert (await task_view(requester.client, waiting))["check_result"] == "accept"
    await report_row.locator("button", has_text="Uphold").click()
    await report_row.wait_for(state="detached")


async def test_requester_reads_and_downloads_majority_and_dawid_skene_results(platform, people, admin, open_page):
    requester = await people.manager()
    await people.fund(requester, 10)
    taggers = await people.annotators(3)
    files = await upload_texts(requester.client, ["meow", "woof"])
    task_id = await published(admin, requester, task_body(files, distribute_user_num=3))
    for tagger, second in zip(taggers, ["dog", "dog", "bird"], strict=True):
        assert (await tagger.client.post(f"/task/accept/{task_id}")).json()["code"] == 0
        await answer_all(tagger, task_id, {1: "cat", 2: second})

    page = await open_page()
    await sign_in(page, requester.user_name, PASSWORD)
    await page.wait_for_selector(f'[data-results="{task_id}"]:has-text("All answers (CSV)")')  # work awaits review
    await page.goto(f"/#/review/{task_id}")
    rows = page.locator("#results tbody tr")
    await rows.nth(1).wait_for()
    first, second = [[cell.strip() for cell in await rows.nth(i).locator("td").all_inner_texts()] for i in (0, 1)]
    assert first[0] == "1.txt" and first[1] == "cat (3/3)" and first[2].startswith("cat ")
    assert second[1] == "dog (2/3)" and second[2].startswith("dog ") and second[3:] == ["dog", "dog", "bird"]
    assert "Estimated accuracy" in await page.inner_text("#results tfoot")
    await page.locator("#results").scroll_into_view_if_needed()
    await shot(page, "results")

    async with page.expect_download() as download:
        await page.click("#results-download")
    text = (await (await download.value).path()).read_text()
    header, row1 = text.splitlines()[:2]
    assert "majority_answer" in header and "dawid_skene_answer" in header and row1.startswith("1,1.txt,")
    # Accepted work only, while it waits for review: the platform's message, in the card.
    await page.select_option("#results-type", "accepted")
    await page.wait_for_selector("#results .alert:has-text('review not finish')")


def test_every_text_key_the_pages_use_is_in_both_languages():
    dictionaries = {
        lang: set(re.findall(r'"([\w.]+)":', (STATIC_JS / "i18n" / f"{lang}.js").read_text())) for lang in ("zh", "en")
    }
    assert dictionaries["zh"] == dictionaries["en"], dictionaries["zh"] ^ dictionaries["en"]
    used = {
        key
        for path in STATIC_JS.rglob("*.js")
        if "i18n" not in path.parts
        for key in re.findall(r'\bt\("([\w.]+)"', path.read_text())
    }
    assert used and used <= dictionaries["en"], used - dictionaries["en"]
