"""`actorflow cancel`, `actorflow send` and `actorflow runs --workflow`, as real processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_cli import assert_one_error_line, cli, start_writer

import actorflow as af

pytestmark = pytest.mark.slow


@af.workflow(name="cli_waiter")
async def waiter(ctx: af.WorkflowContext, topic: str) -> Any:
    return await ctx.recv(topic)


async def test_send_reaches_a_run_when_it_resumes_and_cancel_ends_one(tmp_path: Path) -> None:
    db = tmp_path / "manage.db"
    async with af.Runtime(db) as rt:
        await rt.start(waiter, "go", run_id="wants-a-message")
        await rt.start(waiter, "go", run_id="to-cancel")
    # Both runs wait, unfinished, in a journal no one writes now.
    sent, json_sent = cli(
        ["--db", str(db), "send", "wants", "not json"],
        ["--db", str(db), "send", "wants-a-message", '{"ok": [1, 2]}', "--topic", "go"],
    )
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout == 'sent "not json" to run wants-a-message (topic default)\n'
    assert json_sent.returncode == 0, json_sent.stderr
    assert json_sent.stdout == 'sent {"ok": [1, 2]} to run wants-a-message (topic go)\n'
    (cancelled,) = cli(["--db", str(db), "cancel", "to-cancel"])
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout == "run to-cancel CANCELLED\n"
    (again, listed) = cli(
        ["--db", str(db), "cancel", "to-cancel"],
        ["--db", str(db), "runs", "--workflow", "cli_waiter", "--status", "cancelled"],
    )
    assert again.stdout == "run to-cancel had already ended CANCELLED\n"
    assert listed.stdout.split("\t")[:3] == ["to-cancel", "cli_waiter", "CANCELLED"]
    async with af.Runtime(db) as rt:  # resumes the waiting run, which finds its message
        assert await rt.handle("wants-a-message").result() == {"ok": [1, 2]}
        assert await rt.status("to-cancel") is af.RunStatus.CANCELLED


def test_cancel_and_send_errors_are_one_line(tmp_path: Path) -> None:
    db = tmp_path / "locked.db"
    missing, bad_topic = cli(
        ["--db", str(tmp_path / "none.db"), "cancel", "r"],
        ["--db", str(db), "send", "r", "1", "--topic", "a b"],
    )
    assert_one_error_line(missing, 1, "no journal at")
    assert not (tmp_path / "none.db").exists()
    assert bad_topic.returncode == 2
    writer = start_writer(db, "idle", "idle", "30")
    try:
        # The run executes in another process: that process applies them, in turn.
        (send,) = cli(["--db", str(db), "send", "idle", "1"])
        (cancel,) = cli(["--db", str(db), "cancel", "idle"])
        unknown, late = cli(
            ["--db", str(db), "runs", "--workflow", "nope"],
            ["--db", str(db), "send", "idle", "2"],
        )
        status = cli(["--db", str(db), "runs", "--status", "cancelled"])[0]
    finally:
        writer.kill()
        writer.communicate(timeout=10)
    assert send.returncode == 0, send.stderr
    assert send.stdout == "sent 1 to run idle (topic default)\n"
    assert cancel.stdout == "run idle CANCELLED\n"
    assert status.stdout.split("\t")[:3] == ["idle", "idler", "CANCELLED"]
    assert unknown.returncode == 0
    assert unknown.stdout == ""
    assert_one_error_line(late, 1, "run 'idle' is CANCELLED")
