"""Browser tests: Playwright (Python) driving Debian's headless Chromium (no browser download).

The session installs `chromium` with apt-get when /usr/bin/chromium is missing (we run as root);
when it cannot be had, the browser tests are skipped with the reason. Screenshots of the main pages
go to var/screenshots/ (README, "Admin").
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
PASSWORD = "admin-password-123"


def ensure_cjk_font() -> None:
    """A Chinese font, so that the Chinese screenshots show characters, not boxes (best effort)."""
    listed = (
        subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True)
        if shutil.which("fc-list")
        else None
    )
    if listed is None or listed.stdout.strip() or os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "fonts-wqy-microhei"], env=env, capture_output=True, timeout=600
    )


def ensure_chromium() -> str | None:
    """The reason Chromium cannot be used, or None once /usr/bin/chromium exists."""
    if Path(CHROMIUM).exists():
        ensure_cjk_font()
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"{CHROMIUM} is missing and apt-get cannot install it here (not root)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            return f"{' '.join(command)} failed: {done.stderr.strip()[-300:]}"
    return None if Path(CHROMIUM).exists() else "apt-get installed no /usr/bin/chromium"


@pytest.fixture(scope="module")
def browser(django_db_setup):
    reason = ensure_chromium()
    if reason:
        pytest.skip(reason)
    playwright_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API keeps an event loop in this thread while it runs; the tests' own ORM
    # calls are still plain synchronous code, so Django's async-safety check must not refuse them.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with playwright_api.sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def admin_user(browser, transactional_db, settings):
    from django.contrib.auth import get_user_model

    from tasks.models import Project

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user = get_user_model().objects.create_superuser("admin", "admin@example.com", PASSWORD)
    project = Project.objects.create(project_id="ops", name="operations")
    project.members.add(user)  # the websocket takes the session user's project
    return user


@pytest.fixture
def page(browser, admin_user):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
    context.set_default_timeout(15000)
    tab = context.new_page()
    yield tab
    context.close()


def login(page, base_url: str) -> None:
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def asgi_server(admin_user):
    """The whole ASGI app (HTTP and websockets) under daphne, on the test database and Redis."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    from tests.nodes import database_url

    env = {
        **os.environ,
        # The test database (PostgreSQL, or the embedded default's SQLite file): the server shares it.
        "DATABASE_URL": database_url(),
        "VIAS_DATA_DIR": str(settings.DATA_DIR),
        "DJANGO_SETTINGS_MODULE": "vias.settings",
    }
    # The suite hashes passwords with MD5 for speed; the server process knows only the default hashers.
    admin_user.password = PBKDF2PasswordHasher().encode(PASSWORD, PBKDF2PasswordHasher().salt())
    admin_user.save(update_fields=["password"])
    if not settings.USE_BUNDLED_REDIS:
        env["REDIS_URL"] = settings.REDIS_URL
    port = free_port()
    log = open(Path(settings.DATA_DIR) / "daphne.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "vias.asgi:application"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None:
                    pytest.fail(
                        f"daphne exited: {(Path(settings.DATA_DIR) / 'daphne.log').read_text()[-2000:]}"
                    )
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
