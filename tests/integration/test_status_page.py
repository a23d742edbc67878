"""The --status page in a real browser: Debian's Chromium, headless, driven
by Playwright (the Python package, pointed at /usr/bin/chromium: no browser
download).  The page must render under its own Content-Security-Policy with
no console error, show both workers and a request held in the app, and then
update by itself: the held request leaves the in-flight table, the request
count grows, the charts have their samples.  A screenshot is saved to
``$DUMBWAITER_ARTIFACTS/status-page.png`` (or the test's temporary folder) and
its path printed.
"""

from __future__ import annotations

import http.client
import os
import pathlib
import shutil
import threading

import pytest
from playwright.sync_api import ConsoleMessage, expect, sync_playwright

from integration.fronts import required
from serving import Server, free_port, until

pytestmark = pytest.mark.integration

#: As root, with no network: no sandbox, nothing fetched in the background.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        required("chromium", "chromium")
    assert path is not None
    return path


def get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def count(text: str) -> int:
    return int(text.replace(",", ""))


def test_the_status_page_updates_itself_in_chromium(tmp_path: pathlib.Path) -> None:
    browser_path = chromium()
    port, board = free_port(), free_port()
    args = ["--http", f"127.0.0.1:{port}", "--workers", "2", "--status", f"127.0.0.1:{board}"]
    artifacts = pathlib.Path(os.environ.get("DUMBWAITER_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "status-page.png"
    with Server(args) as server:
        assert until(lambda: get(board, "/healthz") == 200, 15)
        for _ in range(25):
            assert get(port, "/hello") == 200
        held = threading.Thread(target=get, args=(port, "/block?first"))
        held.start()
        problems: list[str] = []

        def console(message: ConsoleMessage) -> None:
            if message.type in ("error", "warning"):
                problems.append(f"{message.type}: {message.text}")

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=browser_path, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1100, "height": 860})
                page.on("console", console)
                page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
                page.goto(f"http://127.0.0.1:{board}/")
                page.wait_for_selector('body[data-updates="1"]', state="attached")
                expect(page.locator("#health")).to_have_text("healthy")
                expect(page.locator("#workers tbody tr")).to_have_count(2)
                expect(page.locator("#workers tbody tr td.state-serving")).to_have_count(2)
                rows = page.locator("#inflight tbody tr")
                expect(rows).to_have_count(1)
                expect(rows.first.locator("td.path")).to_have_text("/block")
                expect(rows.first).to_contain_text("in the app")
                before = count(page.locator("#c-requests").inner_text())

                # Live: what happens now shows up without a reload.
                for _ in range(30):
                    assert get(port, "/hello") == 200
                server.release("first")
                held.join(10)
                expect(rows).to_have_count(0)
                assert until(
                    lambda: count(page.locator("#c-requests").inner_text()) >= before + 31, 10
                )
                updates = int(page.locator("body").get_attribute("data-updates") or 0)
                assert updates >= 2
                points = page.locator("#chart-rate polyline").get_attribute("points") or ""
                assert len(points.split()) >= 2
                assert page.locator("#chart-queue polyline").count() == 2

                # For the picture: a request held again, and a little load.
                again = threading.Thread(target=get, args=(port, "/block?shot"))
                again.start()
                expect(rows).to_have_count(1)
                page.wait_for_selector(f'body[data-updates="{updates + 3}"]', state="attached")
                page.screenshot(path=str(shot), full_page=True)
                server.release("shot")
                again.join(10)
            finally:
                browser.close()
        assert problems == []
    assert shot.stat().st_size > 10_000
    print(f"status page screenshot: {shot}")
