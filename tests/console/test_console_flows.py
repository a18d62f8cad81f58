"""The console in a real browser: a requester publishes an image bounding-box task, an annotator draws
and labels boxes and is paid, an admin checks a requester; the AI pages and /docs render."""

from __future__ import annotations

from contextlib import aclosing

from tests.conftest import ADMIN_PASSWORD, ADMIN_USER, gateway_client, unique
from tests.console.conftest import PHONE, scene_png, shot, sign_in
from tests.helpers import admin_client, signup
from tests.tasks_api.conftest import bank_card

PASSWORD = "pass-word-1"


async def _draw_box(page, x1: float, y1: float, x2: float, y2: float) -> None:
    box = await page.locator(".box-viewport").bounding_box()
    await page.mouse.move(box["x"] + x1, box["y"] + y1)
    await page.mouse.down()
    await page.mouse.move(box["x"] + (x1 + x2) / 2, box["y"] + (y1 + y2) / 2, steps=4)
    await page.mouse.move(box["x"] + x2, box["y"] + y2, steps=4)
    await page.mouse.up()


async def test_console_page_is_served_with_its_assets(client):
    page = await client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert (
        "/console/static/js/app.js?v=" in page.text and "default-src 'self'" in page.headers["content-security-policy"]
    )
    version = page.text.split("app.js?v=", 1)[1].split('"', 1)[0]
    asset = await client.get(f"/console/static/js/app.js?v={version}")
    assert asset.status_code == 200 and "immutable" in asset.headers["cache-control"]
    assert (await client.get("/console/static/js/nothing.js")).status_code == 404
    assert (await client.post("/")).status_code == 404  # the console only reads


async def test_bounding_box_task_from_publishing_to_payment(platform, mailbox, open_page):
    async with gateway_client(platform) as requester_api, aclosing(await admin_client(platform)) as admin_api:
        requester = await signup(requester_api, mailbox, "demand")
        r = await requester_api.post("/user/modifybankaccount", json={"bank_account": bank_card()})
        assert r.json()["code"] == 0, r.text
        assert (await requester_api.post("/user/recharge", json={"amount": 10})).json()["code"] == 0
        annotator_name = unique("boxer_")
        r = await requester_api.post(
            "/user/register", json={"username": annotator_name, "password": PASSWORD, "user_area": "vision"}
        )
        assert r.json() == {"response": "注册成功"}, r.text

        # The admin checks the new requester in the console.
        admin = await open_page()
        await sign_in(admin, ADMIN_USER, ADMIN_PASSWORD)
        await admin.wait_for_selector(f'[data-check-user="{requester.user_name}"]')
        await admin.wait_for_selector("#main [aria-busy]", state="detached")  # every card has loaded
        await shot(admin, "admin")
        await admin.click(f'[data-check-user="{requester.user_name}"]')
        await admin.wait_for_selector(f'tr[data-user="{requester.user_name}"] .badge-success')
        profile = (await requester_api.get(f"/user/userinfo/{requester.user_id}")).json()["data"]
        assert profile["is_checked"] is True

        # The requester publishes a bounding-box task of two generated photos.
        publisher = await open_page()
        await sign_in(publisher, requester.user_name, requester.password)
        await publisher.goto("/#/publish")
        await publisher.fill("input[name=task_name]", unique("boxes "))
        await publisher.select_option("select[name=task_kind]", "bbox")
        await publisher.fill("textarea[name=task_style]", "Box every animal")
        await publisher.fill("input[name=tag_type]", "cat, dog")
        await publisher.fill("input[name=reward_per_q]", "3")
        await publisher.locator(".dropzone input[type=file]").set_input_files(
            [{"name": f"{i}.png", "mimeType": "image/png", "buffer": scene_png(i)} for i in (1, 2)]
        )
        await publisher.wait_for_selector("#escrow:has-text('6')")
        await publisher.locator("#escrow").scroll_into_view_if_needed()
        await shot(publisher, "publish")
        await publisher.click("#publish-submit")
        await publisher.wait_for_selector("#requester-tasks .card", timeout=30_000)
        card = publisher.locator("#requester-tasks .card").first
        task_id = int((await card.locator("h3 .muted").inner_text()).lstrip("#"))
        r = await admin_api.post(f"/task/check_task/{task_id}", json={"result": "accept"})
        assert r.json()["code"] == 0, r.text
        await publisher.reload()
        await publisher.locator("#requester-tasks .card").first.locator("button", has_text="Distribute").click()
        await publisher.wait_for_selector(f'[data-review="{task_id}"]')
        assert (await requester_api.get(f"/task/is_distributed/{task_id}")).json()["data"]["is_distributed"]

        # The annotator takes it, draws two boxes with the mouse, labels them by keyboard and submits.
        annotator = await open_page()
        await sign_in(annotator, annotator_name, PASSWORD)
        await annotator.wait_for_selector(f'[data-accept="{task_id}"]')
        await shot(annotator, "tasks")
        await annotator.click(f'[data-accept="{task_id}"]')
        await annotator.wait_for_selector(".box-viewport")
        await annotator.wait_for_function("document.querySelector('.box-image').naturalWidth > 0")
        await _draw_box(annotator, 120, 120, 300, 320)
        await annotator.keyboard.press("2")
        await _draw_box(annotator, 420, 100, 560, 300)
        await annotator.keyboard.press("1")
        assert await annotator.locator(".box-list li").count() == 2
        await shot(annotator, "workspace")
        await annotator.keyboard.press("Enter")
        await annotator.wait_for_selector("#q-counter:has-text('2 / 2')")
        await _draw_box(annotator, 200, 150, 400, 350)
        await annotator.click("#submit-answer")
        await annotator.wait_for_selector("text=All done")

        async with gateway_client(platform) as annotator_api:
            r = await annotator_api.post("/user/login", json={"user_name": annotator_name, "password": PASSWORD})
            annotator_id = r.json()["data"]["user_id"]
            answer = (await annotator_api.get(f"/task/{task_id}/1")).json()["data"]["result"][0]["tag_res"]
            assert [box["label"] for box in answer["boxes"]] == ["dog", "cat"]
            assert answer["image_width"] == 640 and all(
                box["width"] > 20 and box["height"] > 20 for box in answer["boxes"]
            )
            assert (await annotator_api.get(f"/user/userinfo/{annotator_id}")).json()["data"]["score"] == 0

        # The requester reviews every answer and accepts: the annotator is paid 3 points x 2 questions.
        await publisher.goto(f"/#/review/{task_id}")
        await publisher.click("button:has-text('All answers')")
        await publisher.wait_for_selector(".answer .thumb-overlay rect")
        await publisher.locator(".answer img").evaluate_all("images => Promise.all(images.map((i) => i.decode()))")
        await shot(publisher, "review")
        await publisher.click(f"#accept-{annotator_id}")
        await publisher.wait_for_selector("text=6 points paid")

        await annotator.goto("/#/profile")
        await annotator.wait_for_selector("#profile-points")
        for _ in range(50):  # the payout goes through the tasks service's outbox
            if await annotator.inner_text("#profile-points") == "6":
                break
            await annotator.wait_for_timeout(200)
            await annotator.reload()
            await annotator.wait_for_selector("#profile-points")
        assert await annotator.inner_text("#profile-points") == "6"
        await annotator.wait_for_selector("#toasts .toast", state="detached")  # the workspace's "saved" notes
        await shot(annotator, "profile")


async def test_errors_are_shown_in_plain_words_and_the_language_switches(platform, open_page):
    page = await open_page(locale="zh-CN")
    await page.goto("/#/login")
    assert await page.inner_text("#login-submit") == "登录"
    await page.fill("input[name=user_name]", unique("nobody_"))
    await page.fill("input[name=password]", "wrong-password")
    await page.click("#login-submit")
    error = page.locator(".alert-error")
    await error.wait_for()
    assert (await error.inner_text()).strip()  # the 003 envelope's message
    await page.click("#lang-switch")
    await page.wait_for_selector("#login-submit:has-text('Sign in')")
    await page.reload()
    await page.wait_for_selector("#login-submit:has-text('Sign in')")  # remembered
    await shot(page, "login")


async def test_annotator_tasks_fit_a_phone(platform, mailbox, open_page):
    async with gateway_client(platform) as api:
        name = unique("phone_")
        r = await api.post("/user/register", json={"username": name, "password": PASSWORD, "user_area": "x"})
        assert r.json() == {"response": "注册成功"}
    page = await open_page(viewport=PHONE)
    await sign_in(page, name, PASSWORD)
    await page.wait_for_selector("#free-tasks")
    overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0


async def test_docs_render_the_merged_openapi_document(platform, open_page):
    page = await open_page()
    await page.goto("/docs")
    await page.wait_for_selector(".opblock", timeout=30_000)
    assert await page.locator(".opblock").count() > 50
    assert await page.locator("text=Unable to render this definition").count() == 0
    bundle = await page.evaluate("fetch('/docs/assets/swagger-ui-bundle.js').then(r => r.text())")
    assert '"5.' in bundle[-400_000:] or "5.35" in bundle
    await shot(page, "docs")


async def test_defect_page_shows_a_result_image(platform, mailbox, open_page):
    from tests.fixtures.steel import steel_photo

    async with gateway_client(platform) as api:
        account = await signup(api, mailbox, "demand")
    page = await open_page()
    await sign_in(page, account.user_name, account.password)
    await page.goto("/#/defect")
    await page.locator(".dropzone input[type=file]").set_input_files(
        [{"name": "steel.png", "mimeType": "image/png", "buffer": steel_photo(seed=3)}]
    )
    image = page.locator("img.defect-image")
    await image.wait_for(timeout=60_000)
    assert (await image.get_attribute("src")).startswith("data:image/jpeg;base64,")
    assert await page.evaluate("document.querySelector('img.defect-image').naturalWidth") > 0
    await shot(page, "defect")


async def test_face_search_by_photo_shows_the_enrolled_person_first(platform, mailbox, open_page):
    from tests.fixtures.face_photos import face_photo_dir

    photos = face_photo_dir()
    async with gateway_client(platform) as api:
        account = await signup(api, mailbox, "demand")
    page = await open_page()
    await sign_in(page, account.user_name, account.password)
    await page.goto("/#/face")
    collection = unique("people_")
    await page.fill("input[name=collection_name]", collection)
    await page.click("button:has-text('Create')")
    await page.wait_for_selector(f"#face-collection option[value={collection}]", state="attached")
    enrol, search = page.locator(".dropzone input[type=file]").nth(0), page.locator(".dropzone input[type=file]").nth(1)
    await enrol.set_input_files([str(photos / name) for name in ("person_a_1.jpg", "person_b_1.jpg", "impostor_1.jpg")])
    await page.wait_for_selector("text=3 faces enrolled", timeout=60_000)
    await search.set_input_files(str(photos / "person_a_2.jpg"))
    first = page.locator("#face-matches .match-list li").first
    await first.wait_for(timeout=60_000)
    assert await first.locator(".match-name").inner_text() == "person_a_1"
    assert "best" in (await first.get_attribute("class"))
    await shot(page, "face")
