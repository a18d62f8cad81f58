"""The console in Chromium: first paint of each main page, and the time from pressing "next" to the
next question drawn in the labeling workspace (prefetched), against the first question's load (not
prefetched) in the same run.

Debian's chromium (/usr/bin/chromium, or LABELHIVE_CHROMIUM) driven by Playwright; the issue's
targets: first paint < 1 s per page, next item < 150 ms p50.
"""

from __future__ import annotations

import io
import os
import secrets
import statistics
import zipfile

import httpx
from PIL import Image, ImageDraw

from bench.common import machine_info, running_platform
from shared.sessions import SESSION_COOKIE

QUESTIONS = 40
PAINT_RUNS = 5
PAGES = ("/#/login", "/#/tasks", "/#/profile", "/#/work/{task_id}", "/#/requester", "/#/publish")
CHROMIUM = os.environ.get("LABELHIVE_CHROMIUM", "/usr/bin/chromium")


def _photo(seed: int) -> bytes:
    image = Image.new("RGB", (1280, 960), (120 + seed % 100, 160, 200))
    draw = ImageDraw.Draw(image)
    draw.ellipse([100 + seed * 5 % 600, 200, 500 + seed * 5 % 600, 600], fill=(200, 120, 40))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


async def _task(gateway: str, admin_user: str, admin_password: str) -> tuple[int, str]:
    """A distributed bounding-box task of QUESTIONS photos; the annotator's session token."""
    async with (
        httpx.AsyncClient(base_url=gateway, timeout=120) as requester,
        httpx.AsyncClient(base_url=gateway, timeout=60) as admin,
        httpx.AsyncClient(base_url=gateway) as annotator,
    ):
        name = f"bench_req_{secrets.token_hex(3)}"
        await requester.post("/user/register-manager", json={"username": name, "password": "bench-pass-1"})
        await requester.post("/user/login", json={"user_name": name, "password": "bench-pass-1"})
        await requester.post("/user/modifybankaccount", json={"bank_account": str(secrets.randbelow(10**15) + 10**15)})
        await requester.post("/user/recharge", json={"amount": 1000})
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as members:
            for i in range(1, QUESTIONS + 1):
                members.writestr(f"{i}.jpg", _photo(i))
        r = await requester.post(
            "/task/upload_data",
            params={"data_type": "image"},
            files={"file": ("data.zip", archive.getvalue(), "application/zip")},
        )
        assert r.json()["code"] == 0, r.text
        files = r.json()["data"]
        r = await requester.post(
            "/task/",
            json={
                "task_type": "bbox",
                "task_style": "box it",
                "reward_per_q": 1,
                "time_limit_per_q": 600,
                "total_time_limit": 86400,
                "distribute_user_num": 1,
                "task_name": "bench boxes",
                "accept_method": "manual",
                "files": files,
                "tag_type": ["a", "b", "c"],
                "strategy": "toall",
                "input_type": [],
                "cut_num": "1",
                "result_type": "bbox",
            },
        )
        assert r.json()["code"] == 0, r.text
        task_id = r.json()["data"]["task_id"]
        await admin.post("/user/login", json={"user_name": admin_user, "password": admin_password})
        await admin.post(f"/task/check_task/{task_id}", json={"result": "accept"})
        assert (await requester.post(f"/task/distribute/{task_id}")).json()["code"] == 0
        tagger = f"bench_tag_{secrets.token_hex(3)}"
        await annotator.post("/user/register", json={"username": tagger, "password": "bench-pass-1", "user_area": "x"})
        r = await annotator.post("/user/login", json={"user_name": tagger, "password": "bench-pass-1"})
        user = r.json()["data"]
        assert (await annotator.post(f"/task/accept/{task_id}")).json()["code"] == 0
        return (
            task_id,
            f'{{"user_id":{user["user_id"]},"user_name":"{tagger}","user_type":"tag"}}',
            annotator.cookies[SESSION_COOKIE],
        )


LATENCY_PROBE = """
window.__latencies = [];
window.addEventListener('keydown', () => { window.__pressed = performance.now(); }, true);
window.addEventListener('labelhive:question-shown', () => {
  if (window.__pressed === undefined) return;
  const pressed = window.__pressed; window.__pressed = undefined;
  requestAnimationFrame(() => window.__latencies.push(performance.now() - pressed));
});
"""


async def main() -> None:
    from playwright.async_api import async_playwright

    print(machine_info(), flush=True)
    async with running_platform(
        ["auth", "dataset", "tasks", "stats", "console"], name="console", extra_env={"LABELHIVE_UPLOAD_THROTTLE": "0"}
    ) as bench:
        task_id, user_json, cookie = await _task(bench.gateway_url, bench.admin_user, bench.admin_password)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            paints: dict[str, list[float]] = {}
            for path in PAGES:
                path = path.format(task_id=task_id)
                for _ in range(PAINT_RUNS):  # a fresh context each time: nothing cached
                    context = await browser.new_context(
                        base_url=bench.gateway_url, viewport={"width": 1280, "height": 800}
                    )
                    if path != "/#/login":
                        await context.add_cookies([{"name": SESSION_COOKIE, "value": cookie, "url": bench.gateway_url}])
                        await context.add_init_script(f"localStorage.setItem('labelhive.user', '{user_json}')")
                    page = await context.new_page()
                    await page.goto(path)
                    await page.wait_for_selector("#main .page")
                    assert path == "/#/login" or await page.locator("#sign-out").count(), "not signed in"
                    fcp = await page.evaluate(
                        "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1"
                    )
                    paints.setdefault(path, []).append(fcp)
                    await context.close()
            context = await browser.new_context(base_url=bench.gateway_url, viewport={"width": 1280, "height": 800})
            await context.add_cookies([{"name": SESSION_COOKIE, "value": cookie, "url": bench.gateway_url}])
            await context.add_init_script(f"localStorage.setItem('labelhive.user', '{user_json}')")
            await context.add_init_script(LATENCY_PROBE)
            page = await context.new_page()
            await page.goto("/#/tasks")
            await page.wait_for_selector("#my-tasks")
            first = await page.evaluate(
                """async (path) => {
                const started = performance.now();
                location.hash = path;
                await new Promise((resolve) => window.addEventListener('labelhive:question-shown', resolve, {once: true}));
                return performance.now() - started; }""",
                f"/work/{task_id}",
            )
            await page.wait_for_selector(".box-viewport")
            for _ in range(QUESTIONS - 1):
                count = await page.evaluate("window.__latencies.length")
                await page.keyboard.press("ArrowRight")
                await page.wait_for_function("(n) => window.__latencies.length > n", arg=count)
                await page.wait_for_timeout(150)  # an annotator looks at the picture before moving on
            latencies = await page.evaluate("window.__latencies")
            await browser.close()
    print(f"first contentful paint, median of {PAINT_RUNS} cold loads (1280x800):")
    for path, values in paints.items():
        print(f"  {path:<22} {statistics.median(values):7.0f} ms  (max {max(values):.0f} ms)")
    latencies.sort()
    print(
        f"workspace, {QUESTIONS} photos of 1280x960: first question (route + task + question + image, "
        f"not prefetched) {first:.0f} ms; next question (key press to drawn frame, prefetched) "
        f"p50 {statistics.median(latencies):.1f} ms, p90 {latencies[int(len(latencies) * 0.9) - 1]:.1f} ms, "
        f"max {latencies[-1]:.1f} ms over {len(latencies)} moves"
    )
