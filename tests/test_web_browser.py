"""examples/web_chat.py in a real headless Chromium (the system's, driven by Playwright).

The server runs as a real process; the page's state is read from
``window.actorflow`` (``text``, ``received``: every offset received, duplicates
included, ``status``, ``done``, ``opens``). Without /usr/bin/chromium these
tests skip, unless ``ACTORFLOW_REQUIRE_BROWSER`` is set (as in CI): then they fail.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from _processes import sigkill, spawn

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EXAMPLES = Path(__file__).parent.parent / "examples"
EXAMPLE = EXAMPLES / "web_chat.py"
PROMPT = "Why stream tokens durably?"
#: Milliseconds to wait for the page to get somewhere.
WAIT = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - the dev extra has it
        reason = "the playwright package is not installed (pip install 'actorflow[dev]')"
        if os.environ.get("ACTORFLOW_REQUIRE_BROWSER"):
            pytest.fail(reason)
        pytest.skip(reason)
    if not CHROMIUM.exists():
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("ACTORFLOW_REQUIRE_BROWSER"):
            pytest.fail(f"{reason}, and ACTORFLOW_REQUIRE_BROWSER is set")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    page = browser.new_page()
    page.set_default_timeout(WAIT)
    try:
        yield page
    finally:
        page.close()


def answer_for(prompt: str) -> str:
    """The example's answer, computed by the example's own function (in another process,
    so that its workflow is not registered in this one)."""
    code = "import json, sys, web_chat; print(json.dumps(web_chat.answer_for(sys.argv[1])))"
    out = subprocess.run(
        [sys.executable, "-c", code, prompt],
        cwd=EXAMPLES,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    answer = json.loads(out.stdout)
    assert isinstance(answer, str)
    return answer


def start_server(
    db: Path, *, port: int = 0, backend: str = "asyncio", pace: float = 0.05
) -> tuple[subprocess.Popen[str], int]:
    """Start the example on ``port`` (0: a free one); return it once it serves, and its port."""
    proc = spawn(str(EXAMPLE), "--db", db, "--port", port, "--pace", pace, "--backend", backend)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.match(r"serving on http://127\.0\.0\.1:(\d+)/", line)
    if match is None:
        sigkill(proc)
        pytest.fail(
            f"web_chat.py did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}"
        )
    return proc, int(match[1])


def state(page: Page) -> dict[str, Any]:
    value = page.evaluate("() => window.actorflow")
    assert isinstance(value, dict)
    return value


def start_chat(page: Page, port: int, prompt: str) -> None:
    page.goto(f"http://127.0.0.1:{port}/")
    page.wait_for_selector("#start", state="visible")  # the workflow list has loaded
    page.fill("#prompt", prompt)
    page.click("#start")


def test_the_page_shows_tokens_as_they_arrive(page: Page, tmp_path: Path) -> None:
    answer = answer_for(PROMPT)
    words = len(answer.split(" "))
    server, port = start_server(tmp_path / "chat.db", pace=0.03)
    try:
        start_chat(page, port, PROMPT)
        seen: list[int] = []  # text lengths observed before the end
        length = 0
        while True:
            page.wait_for_function(
                "n => window.actorflow.text.length > n || window.actorflow.done", arg=length
            )
            now = state(page)
            if now["done"]:
                break
            length = len(now["text"])
            assert answer.startswith(now["text"])  # a prefix of the answer, never garbled
            seen.append(length)
        final = state(page)
        shown = page.text_content("#output")
        status = page.text_content("#status")
    finally:
        sigkill(server)
    assert len(seen) >= 3, seen  # it grew over several observations, not all at once
    assert 0 < seen[0] < len(answer)
    assert final["text"] == shown == answer
    assert final["status"] == "COMPLETED" == status
    assert final["error"] is None
    assert final["received"] == list(range(words))
    assert final["opens"] == 1


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_after_a_restart_mid_stream_the_page_resumes_with_nothing_lost_or_doubled(
    page: Page, tmp_path: Path, backend: str
) -> None:
    answer = answer_for(PROMPT)
    words = len(answer.split(" "))
    db = tmp_path / "chat.db"
    server, port = start_server(db, backend=backend)
    try:
        start_chat(page, port, PROMPT)
        page.wait_for_function("() => window.actorflow.received.length >= 5")
    finally:
        sigkill(server)
    before = state(page)
    assert not before["done"]
    assert 5 <= len(before["received"]) < words  # killed mid-stream
    server, again = start_server(db, port=port, backend=backend)  # same origin, same journal
    try:
        assert again == port
        page.wait_for_function("() => window.actorflow.done")
        final = state(page)
        shown = page.text_content("#output")
    finally:
        sigkill(server)
    assert final["status"] == "COMPLETED"
    assert final["text"] == shown == answer
    n = len(final["entries"])
    assert final["received"] == list(range(n))  # every offset once: no duplicate, no gap
    assert [e["offset"] for e in final["entries"]] == list(range(n))
    # The killed attempt's tokens stay in the stream; the rerun wrote the whole answer after them.
    attempts = [e["attempt"] for e in final["entries"]]
    assert attempts == sorted(attempts)
    assert attempts[0] == 1
    assert attempts.count(attempts[-1]) == words
    assert attempts[-1] >= 2
    assert final["opens"] >= 2  # the EventSource reconnected
    # The server said where the last attempt starts over (a `restart` event).
    restart = final["restarts"][-1]
    assert restart["attempt"] == attempts[-1]
    assert restart["offset"] == attempts.index(attempts[-1])
    assert restart["from_offset"] == attempts.index(attempts[restart["offset"] - 1])
