"""The dashboard at ``/`` in a real headless Chromium (the system's, driven by Playwright).

Servers and workflows run as real processes: ``actorflow serve`` over a
journal that ``programs/stream_writer.py`` writes, and ``examples/web_chat.py``.
Screenshots go to ``.artifacts/dashboard/`` (git-ignored), to be looked at.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import test_web_browser
from _processes import sigkill
from _processes import spawn as spawn_program
from test_web_browser import start_chat, start_server

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.slow

# The Chromium fixtures of the chat page's tests.
browser = test_web_browser.browser
page = test_web_browser.page

ARTIFACTS = Path(__file__).parent.parent / ".artifacts" / "dashboard"
PHONE = {"width": 390, "height": 844}


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def writer(db: Path, *args: str) -> subprocess.Popen[str]:
    proc = spawn_program("stream_writer.py", db, *args)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("STARTED"), proc.stderr.read() if proc.stderr else line
    return proc


def serve(db: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "actorflow", "--db", str(db), "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.match(r"serving (http://127\.0\.0\.1:\d+/)", line)
    if match is None:
        sigkill(proc)
        pytest.fail(f"actorflow serve did not start: {line!r}")
    return proc, match[1]


def state(page: Page) -> dict[str, Any]:
    value = page.evaluate("() => window.actorflow")
    assert isinstance(value, dict)
    return value


def row(run_id: str) -> str:
    return f'#runs tr[data-run-id="{run_id}"]'


def test_the_run_list_updates_when_a_run_starts_in_another_process(
    page: Page, tmp_path: Path
) -> None:
    db = tmp_path / "list.db"
    sigkill(writer(db, "idle", "first", "30"))  # leaves "first" unfinished
    server, url = serve(db)
    second = None
    try:
        page.goto(url)
        page.wait_for_selector(row("first"))
        # Killed right after its start was committed: it may not have begun running.
        assert page.text_content(row("first") + " td:nth-child(3)") in ("PENDING", "RUNNING")
        polls = state(page)["polls"]
        second = writer(db, "idle", "second", "30")  # another process starts a run
        page.wait_for_selector(row("second"))
        assert state(page)["polls"] > polls  # by polling, not by reloading
        ids = page.eval_on_selector_all("#runs tbody tr", "rows => rows.map(r => r.dataset.runId)")
        assert ids == ["second", "first"]  # newest first
        assert page.text_content(row("second") + " td:nth-child(2)") == "idler"
        # The keyboard opens a run: focus its button, press Enter.
        page.focus(row("second") + " button")
        page.keyboard.press("Enter")
        page.wait_for_function("() => window.actorflow.runId === 'second'")
        page.wait_for_selector('#timeline li[data-step="doze"]')
        assert page.locator("#controls").is_hidden()  # a read-only server: no cancel, no send
        screenshot(page, "run-list")
    finally:
        if second is not None:
            sigkill(second)
        sigkill(server)


def test_the_timeline_shows_a_retry_and_the_runs_error(page: Page, tmp_path: Path) -> None:
    db = tmp_path / "failed.db"
    done = writer(db, "fail", "broken")
    out, _ = done.communicate(timeout=30)
    assert out.strip() == "DONE FAILED"
    server, url = serve(db)
    try:
        page.goto(url + "#run=broken&key=notes")
        page.wait_for_function("() => window.actorflow.done")
        step = '#timeline li[data-step="flaky"]'
        page.wait_for_selector(step)
        head = page.text_content(step + " .step-head")
        assert head is not None
        assert "2 attempts" in head
        assert "↻ 1 retry" in head
        attempts = page.eval_on_selector_all(
            step + " ul.attempts > li", "items => items.map(i => i.textContent)"
        )
        assert attempts[0].startswith("attempt 1 failed")
        assert "ConnectionError: the model hung up" in attempts[0]
        assert attempts[1].startswith("↻ retry attempt 2 ok")
        # The stream shows attempt 2's entry once, and names the retried attempt.
        text = page.text_content("#output")
        assert text is not None
        assert text.startswith("attempt 2")
        assert "attempt 1" not in text
        notes = page.text_content("#stream-notes")
        assert notes is not None
        assert "↻ retried step flaky: attempt 1 wrote 1 entry, replaced by attempt 2" in notes
        assert page.text_content("#error-line") == "ValueError: the answer was not valid JSON"
        trace = page.text_content("#error-trace")
        assert trace is not None
        assert "Traceback" in trace
        assert page.text_content("#status") == "FAILED: the answer was not valid JSON"
        screenshot(page, "timeline")
        page.set_viewport_size(PHONE)
        page.wait_for_timeout(100)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= PHONE["width"]  # nothing sticks out at phone width
        screenshot(page, "timeline-phone")
    finally:
        sigkill(server)


def test_cancel_ends_a_running_run_from_the_page(page: Page, tmp_path: Path) -> None:
    server, port = start_server(tmp_path / "chat.db", pace=0.3)
    try:
        start_chat(page, port, "Cancel me, please.")
        page.wait_for_function("() => window.actorflow.received.length >= 2")
        page.wait_for_selector("#cancel", state="visible")
        screenshot(page, "before-cancel")
        page.click("#cancel")
        page.wait_for_function("() => window.actorflow.done")
        final = state(page)
        page.wait_for_selector(row(final["runId"]) + " td.s-CANCELLED")
        page.wait_for_selector("#controls", state="hidden")
        result = page.text_content("#control-result")
        screenshot(page, "after-cancel")
    finally:
        sigkill(server)
    assert final["status"] == "CANCELLED"
    assert page.text_content("#status") == "CANCELLED"
    assert result == "run CANCELLED"
    assert 2 <= len(final["received"]) < 20  # it stopped midway


def test_a_graph_run_shows_its_shape_and_takes_a_message_from_the_page(
    page: Page, tmp_path: Path
) -> None:
    import httpx

    example = Path(__file__).parent.parent / "examples" / "agent_loop.py"
    server, url = serve(tmp_path / "agent.db", "--workflow", f"{example}:agent")
    try:
        question = {"role": "user", "content": "What's the weather tomorrow?"}
        started = httpx.post(url + "workflows/agent", json={"input": {"messages": [question]}})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        page.goto(url + f"#run={run_id}")
        page.wait_for_selector('#graph svg g[data-node="assistant"]')
        nodes = page.eval_on_selector_all(
            "#graph g[data-node]", "gs => gs.map(g => g.dataset.node)"
        )
        assert set(nodes) == {"__start__", "__end__", "assistant", "tools", "approve"}
        assert "NaN" not in page.inner_html("#graph")
        box = page.locator("#graph svg").bounding_box()
        assert box is not None
        assert box["height"] > 200  # four rows: start, assistant, tools and approve, end
        label = page.get_attribute("#graph", "aria-label")
        assert label is not None
        assert "tools goes to assistant" in label
        page.wait_for_selector('#timeline li[data-step="agent-approve"]')  # waiting for approval
        page.wait_for_selector("#controls", state="visible")
        page.fill("#send-value", '"yes"')
        page.fill("#send-topic", "approval")
        page.click("#send")
        page.wait_for_function(
            "() => window.actorflow.steps && window.actorflow.steps.run.status === 'COMPLETED'"
        )
        page.wait_for_selector("#messages dt")
        sent = page.text_content("#messages")
        page.wait_for_selector("#controls", state="hidden")
        ran = page.eval_on_selector_all(
            "#graph g[data-node] rect", "rs => rs.map(r => r.getAttribute('fill'))"
        )
        assert ran.count("#dcebdc") == 3  # assistant, tools and approve ran
        screenshot(page, "graph")
    finally:
        sigkill(server)
    assert sent == "approval #1yes"
