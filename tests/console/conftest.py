"""The console's end-to-end tests: Debian's chromium (headless), driven by Playwright, against the test
platform of tests/conftest.py. Each person gets a browser context of their own (their own cookies, and
their own client address, so the login rate limits never mix them up).

`LABELHIVE_SCREENSHOTS=1` also writes the main screens to docs/screenshots/ (the README shows them).
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from PIL import Image, ImageDraw

from shared.launcher import ROOT
from tests.conftest import random_ip
from tests.tasks_api.conftest import people  # noqa: F401 - the tasks tests' people, shared here

CHROMIUM = os.environ.get("LABELHIVE_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = ROOT / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")  # type: ignore[return-value]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser(chromium_path: str) -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield browser
        await browser.close()


Opener = Callable[..., Awaitable[object]]


@pytest_asyncio.fixture(loop_scope="session")
async def open_page(browser, platform) -> AsyncIterator[Opener]:
    """open_page(locale="en-US", viewport=DESKTOP) -> a page of a fresh context at the console."""
    contexts = []

    async def opener(locale: str = "en-US", viewport: dict[str, int] = DESKTOP):
        context = await browser.new_context(
            base_url=platform.gateway_url,
            locale=locale,
            viewport=viewport,
            extra_http_headers={"X-Forwarded-For": random_ip()},
        )
        contexts.append(context)
        page = await context.new_page()
        page.set_default_timeout(20_000)
        return page

    yield opener
    for context in contexts:
        await context.close()


async def sign_in(page, user_name: str, password: str) -> None:
    await page.goto("/#/login")
    await page.fill("input[name=user_name]", user_name)
    await page.fill("input[name=password]", password)
    await page.click("#login-submit")
    await page.wait_for_selector("#sign-out")


async def shot(page, name: str) -> None:
    if os.environ.get("LABELHIVE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def scene_png(seed: int, size: tuple[int, int] = (640, 480)) -> bytes:
    """A generated photo-like picture: a sky, a ground and two objects to box."""
    image = Image.new("RGB", size, (150 + seed * 10 % 60, 190, 230))
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.rectangle([0, height * 2 // 3, width, height], fill=(90, 140, 80))
    draw.ellipse([80 + seed * 7, 180, 260 + seed * 7, 360], fill=(200, 120, 40))
    draw.rectangle([380, 150 + seed * 5, 560, 380], fill=(70, 70, 160))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()
