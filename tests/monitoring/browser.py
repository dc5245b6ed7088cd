"""A real headless Chromium driven over the DevTools protocol (aiohttp's websocket client), for page tests.

``with Browser(tmp_path) as browser: page = browser.load(path)`` opens a file,
waits for its load event and returns what the page logged (console errors,
uncaught exceptions, Log entries of level error) beside an evaluated value and
a PNG screenshot. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from tests.conftest import free_port
from tests.monitoring.livestack import stop_process

CHROMIUM = "/usr/bin/chromium"
START_TIMEOUT = 30.0
LOAD_TIMEOUT = 30.0
CALL_TIMEOUT = 30.0
SCREEN_WIDTH = 1500
MAX_SCREEN_HEIGHT = 16000


def artifacts_dir() -> Path:
    """Where tests keep what a person may want to look at: $HUX_TEST_ARTIFACTS, else tests/artifacts/."""
    path = Path(os.environ.get("HUX_TEST_ARTIFACTS") or Path(__file__).resolve().parents[1] / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def chromium() -> str:
    found = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if not found:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; scripts/run_tests.py installs it)")
    return found


@dataclass
class Loaded:
    errors: list[str] = field(default_factory=list)
    value: Any = None
    screenshot: bytes = b""


class Browser:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "chromium.log"

    def __enter__(self) -> "Browser":
        profile = self.workdir / "chromium-profile"
        profile.mkdir(exist_ok=True)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-extensions", "--disable-background-networking", "--disable-dev-shm-usage",
                 f"--remote-debugging-port={self.port}", "--remote-allow-origins=*",
                 f"--user-data-dir={profile}", f"--window-size={SCREEN_WIDTH},1000", "about:blank"],
                stdout=log, stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace=10)

    def _page_socket(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        last: object = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"chromium exited with {self.proc.returncode}:\n{self.log.read_text(errors='replace')[-3000:]}")
            try:
                targets = httpx.get(f"http://127.0.0.1:{self.port}/json/list", timeout=2).json()
                pages = [t for t in targets if t.get("type") == "page" and t.get("webSocketDebuggerUrl")]
                if pages:
                    return str(pages[0]["webSocketDebuggerUrl"])
                last = targets
            except (httpx.HTTPError, ValueError) as exc:
                last = exc
            time.sleep(0.3)
        pytest.fail(f"chromium's DevTools did not offer a page within {START_TIMEOUT:g} s (last: {last!r})")

    def load(self, page: Path, expression: str) -> Loaded:
        """Open ``page``, wait for its load event, evaluate ``expression`` (JSON-able) and take a screenshot."""
        return asyncio.run(asyncio.wait_for(self._load(self._page_socket(), page, expression),
                                            START_TIMEOUT + LOAD_TIMEOUT + 3 * CALL_TIMEOUT))

    async def _load(self, socket: str, page: Path, expression: str) -> Loaded:
        loaded = Loaded()
        ids = itertools.count(1)
        replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        load_event = asyncio.Event()
        async with aiohttp.ClientSession() as session, session.ws_connect(socket, max_msg_size=0) as ws:

            async def reader() -> None:
                async for message in ws:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        continue
                    event = json.loads(message.data)
                    if "id" in event and event["id"] in replies:
                        replies.pop(event["id"]).set_result(event)
                        continue
                    method, params = event.get("method"), event.get("params") or {}
                    if method == "Page.loadEventFired":
                        load_event.set()
                    elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                        loaded.errors.append("console: " + " ".join(
                            str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
                    elif method == "Runtime.exceptionThrown":
                        details = params.get("exceptionDetails") or {}
                        loaded.errors.append(f"exception: {details.get('text')} "
                                             f"{(details.get('exception') or {}).get('description', '')}")
                    elif method == "Log.entryAdded" and (params.get("entry") or {}).get("level") == "error":
                        entry = params["entry"]
                        loaded.errors.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}")

            async def call(method: str, **params: Any) -> dict[str, Any]:
                ident = next(ids)
                replies[ident] = asyncio.get_running_loop().create_future()
                await ws.send_str(json.dumps({"id": ident, "method": method, "params": params}))
                reply = await asyncio.wait_for(replies[ident], CALL_TIMEOUT)
                if "error" in reply:
                    pytest.fail(f"DevTools refused {method}: {reply['error']}")
                return dict(reply.get("result") or {})

            task = asyncio.create_task(reader())
            try:
                for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
                    await call(domain)
                await call("Emulation.setDeviceMetricsOverride", width=SCREEN_WIDTH, height=1000,
                           deviceScaleFactor=1, mobile=False)
                await call("Page.navigate", url=page.resolve().as_uri())
                await asyncio.wait_for(load_event.wait(), LOAD_TIMEOUT)
                await asyncio.sleep(0.5)   # late console messages (a CSP report comes after load)
                result = await call("Runtime.evaluate", expression=expression, returnByValue=True)
                if "exceptionDetails" in result:
                    pytest.fail(f"the test's own expression failed: {result['exceptionDetails']}")
                loaded.value = (result.get("result") or {}).get("value")
                height = await call("Runtime.evaluate", expression="document.documentElement.scrollHeight",
                                    returnByValue=True)
                full = min(MAX_SCREEN_HEIGHT, int((height.get("result") or {}).get("value") or 1000))
                await call("Emulation.setDeviceMetricsOverride", width=SCREEN_WIDTH, height=full,
                           deviceScaleFactor=1, mobile=False)
                shot = await call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
                loaded.screenshot = base64.b64decode(shot["data"])
            finally:
                task.cancel()
        return loaded
