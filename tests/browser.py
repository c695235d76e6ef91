"""Browser fixtures (Debian's Chromium driven by Playwright), shared by every browser test as a
pytest plugin (tests/conftest.py lists it), so test modules import no fixtures by name."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

try:
    from playwright import sync_api as playwright
except ImportError:  # the browser fixture says so when it is used
    playwright = None
expect = playwright.expect if playwright is not None else None

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
PASSWORD = "correct-horse-battery"
LIVE = 10_000  # ms to wait for a polled fragment (it polls every 2 s)
ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def real_worker(env: dict[str, str], pool: str) -> Iterator[subprocess.Popen]:
    """`manage.py runworker --pool POOL --name laptop-worker`, stopped (SIGTERM) afterwards."""
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runworker", "--pool", pool, "--name", "laptop-worker", "--poll-interval", "0.2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if playwright is None:
        pytest.skip("needs playwright (pip install -e '.[dev]')")
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Chromium: apt-get install chromium")
    # Playwright's sync API keeps an event loop in this thread; our ORM calls around it are
    # plain synchronous code, which Django would otherwise refuse.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with playwright.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser: Any, request: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    yield tab
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.nodeid.split("::")[-1])
        tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        (ARTIFACTS / f"{name}.html").write_text(tab.content())
    context.close()


@pytest.fixture
def signed_in(page: Any, live_server: Any, admin_user: Any) -> Any:
    """A page signed in as the admin, through the sign-in form."""
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", admin_user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator(".usermenu")).to_contain_text(admin_user.username)
    page.base = live_server.url
    return page
