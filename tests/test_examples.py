"""Every example under examples/ runs to completion."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from _sse import iter_events

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))
EXPECTED = {
    "agent_loop.py": "agent answered: The forecast says: sunny, 21 degrees. (approved=yes)",
    "quickstart.py": "YOU ASKED: 'TELL ME A JOKE'. HERE IS A STREAMED ANSWER.",
    "live_tokens.py": "console subscriber: 18 tokens, in order",
    "durable_tokens.py": "late reader replayed 12 tokens (offsets 0..11)",
    "approval.py": "result:  published: Announcing actorflow 0.1",
    "otel_console.py": "2 lives of run 'otel-demo' in one trace: 6 spans",
    # Runs its own property tests under pytest (both backends, crashes, virtual time).
    "test_my_workflow.py": " passed in ",
}
#: Examples that serve until stopped: checked by test_web_chat_serves (and, in a
#: real browser, by tests/test_web_browser.py), and by tests/test_web_fastapi.py.
SERVERS = {"web_chat.py", "fastapi_chat.py"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "example", [p for p in EXAMPLES if p.name not in SERVERS], ids=lambda p: p.name
)
def test_example_runs(example: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(example)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert EXPECTED.get(example.name, "") in proc.stdout


@pytest.mark.slow
def test_quickstart_runs_twice_on_one_journal(tmp_path: Path) -> None:
    """The second run finds the first in the journal and still reports its own."""
    example = Path(__file__).parent.parent / "examples" / "quickstart.py"
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, str(example), "x.db"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert EXPECTED["quickstart.py"] in proc.stdout
        assert proc.stdout.rstrip().endswith("COMPLETED")


def test_every_example_has_an_expectation() -> None:
    assert {p.name for p in EXAMPLES} <= set(EXPECTED) | SERVERS | {"__init__.py"}


@pytest.mark.slow
def test_web_chat_serves(tmp_path: Path) -> None:
    """web_chat.py serves its page and API: a POSTed prompt streams its answer as SSE."""
    import httpx

    example = Path(__file__).parent.parent / "examples" / "web_chat.py"
    cmd = [sys.executable, str(example), "--port", "0", "--pace", "0.001", "--db", "c.db"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("serving on http://127.0.0.1:"), line
        base = line.split()[2]
        with httpx.Client(base_url=base, timeout=30) as client:
            assert "<title>actorflow</title>" in client.get("/").text
            started = client.post("/workflows/chat", json={"input": "hello"})
            assert started.status_code == 202, started.text
            run_id = started.json()["run_id"]
            with client.stream("GET", f"/runs/{run_id}/streams/tokens") as response:
                events = list(iter_events(response))
            values = [ev.json()["value"] for ev in events if ev.event == "message"]
            assert events[-1].event == "end"
            assert "".join(values).startswith("You asked: 'hello'. Durable streams")
            assert client.get(f"/runs/{run_id}").json()["status"] == "COMPLETED"
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0
