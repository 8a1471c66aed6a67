"""Real-browser test helpers: the dashboard on a free localhost port, and a Chromium page.

    with running_app(store) as url, browser_page() as page:
        page.goto(f"{url}/Draw")
        wait_for_idle(page)

The server is ``streamlit run dashboard/Home.py`` in its own process group (so the jobs it
launches stop with it), pointed at ``results_dir`` through ``RESULTS_DIR``. The browser is
Debian's Chromium (``apt-get install -y chromium``) driven by Playwright's sync API.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import PROJECT_ROOT, SHARED_MNIST

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT_S = 180  # a shared, slow machine: the first start imports a lot
STOP_TIMEOUT_S = 15
DEFAULT_TIMEOUT_MS = 90_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_app(results_dir: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run the dashboard on ``results_dir`` until the block ends; yields its base URL.

    ``env`` adds or overrides environment variables of the server process.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "streamlit", "run", "dashboard/Home.py",
        "--server.headless", "true", "--server.address", "127.0.0.1",
        "--server.port", str(port), "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    server_env = {
        **os.environ,
        "MNIST_DIR": os.environ.get("MNIST_DIR", str(SHARED_MNIST)),
        "RESULTS_DIR": str(results_dir),
        **(env or {}),
    }
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=server_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops its jobs too
        )
        try:
            wait_until_answering(url, server, log)
            yield url
        finally:
            stop(server)


def wait_until_answering(url: str, server: subprocess.Popen, log: Any) -> None:
    """Block until Streamlit's health endpoint says ok; fail with the server's output."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with {server.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"streamlit did not answer within {START_TIMEOUT_S} s:\n{_tail(log)}")


def stop(server: subprocess.Popen) -> None:
    """SIGTERM the server's process group, SIGKILL it if it lingers."""
    if server.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, STOP_TIMEOUT_S)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(log: Any, chars: int = 4000) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-chars:]


@contextmanager
def browser_page(timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Iterator[Any]:
    """A Playwright page (in a fresh browser context) of headless Debian Chromium.

    Blocks may nest (e.g. a module fixture's page and a test's own page): they share one
    Chromium, started by the first and closed when the last ends, because Playwright's sync
    API cannot run twice in one thread.
    """
    browser = _acquire_browser()
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            page = context.new_page()
            page.set_default_timeout(timeout_ms)
            yield page
        finally:
            context.close()
    finally:
        _release_browser()


_shared: dict[str, Any] = {"playwright": None, "browser": None, "users": 0}


def _acquire_browser() -> Any:
    if _shared["users"] == 0:
        from playwright.sync_api import sync_playwright

        if not CHROMIUM.exists():
            raise RuntimeError(f"{CHROMIUM} is missing: apt-get install -y chromium")
        playwright = sync_playwright().start()
        try:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        except BaseException:
            playwright.stop()
            raise
        _shared.update(playwright=playwright, browser=browser)
    _shared["users"] += 1
    return _shared["browser"]


def _release_browser() -> None:
    _shared["users"] -= 1
    if _shared["users"] == 0:
        try:
            _shared["browser"].close()
        finally:
            _shared["playwright"].stop()
            _shared.update(playwright=None, browser=None)


def wait_for_idle(page: Any, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> None:
    """Wait until the app has rendered and no script run is in progress.

    Running shows Streamlit's status widget (with a Stop button) and marks the previous
    run's elements stale; idle is neither. A rerun that has not started yet looks idle, so
    first wait for something the action produces, then for idle.
    """
    page.locator('[data-testid="stApp"]').wait_for(timeout=timeout_ms)
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stStatusWidget"]')
            && !document.querySelector('[data-stale="true"]')""",
        timeout=timeout_ms,
    )
