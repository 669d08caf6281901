"""The command line, driven as a user drives it: real processes on a real journal file.

A runtime in another process (``programs/stream_writer.py``) writes the journal
while ``python -m actorflow`` reads it. Independent commands run concurrently
to keep the file fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import queue
import re
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from _sse import iter_events

from actorflow import JournalError

pytestmark = pytest.mark.slow

WRITER = Path(__file__).parent / "programs" / "stream_writer.py"
ANSI = "\x1b"


# A process started in the background by a shell ignores SIGINT, and so would
# its children: restore the default first, as an interactive shell does.
DEFAULT_SIGINT = (
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, '-m', 'actorflow', *sys.argv[1:]])",
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    env["PYTHONUNBUFFERED"] = "0"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def spawn(*argv: str, command: Sequence[str] = ()) -> subprocess.Popen[str]:
    """Start ``python -m actorflow ARGV`` (or ``COMMAND ARGV``), its output piped."""
    return subprocess.Popen(
        [*(command or (sys.executable, "-m", "actorflow")), *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env=_env(),
    )


def cli(*argvs: Sequence[str]) -> list[subprocess.CompletedProcess[str]]:
    """Run ``actorflow`` once per argv, all at once; return their results in order."""
    procs = [spawn(*argv) for argv in argvs]
    done = []
    for argv, proc in zip(argvs, procs, strict=True):
        out, err = proc.communicate(timeout=30)
        done.append(subprocess.CompletedProcess(list(argv), proc.returncode, out, err))
    return done


class Lines:
    """The stdout of a process, line by line, with a deadline (read by a thread)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()
        assert proc.stdout is not None
        stdout = proc.stdout

        def pump() -> None:
            with stdout:
                for line in stdout:
                    self._lines.put(line)
            self._lines.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def take(self, n: int, timeout: float = 15.0) -> list[str]:
        deadline = time.monotonic() + timeout
        got: list[str] = []
        while len(got) < n:
            line = self._lines.get(timeout=max(deadline - time.monotonic(), 0.001))
            assert line is not None, f"the output ended after {got!r}"
            got.append(line)
        return got

    def rest(self, timeout: float = 15.0) -> list[str]:
        deadline = time.monotonic() + timeout
        got: list[str] = []
        while (
            line := self._lines.get(timeout=max(deadline - time.monotonic(), 0.001))
        ) is not None:
            got.append(line)
        return got


def finish(proc: subprocess.Popen[str], timeout: float = 15.0) -> tuple[int, str]:
    """Wait for ``proc`` (whose stdout a :class:`Lines` reads); its status and stderr."""
    code = proc.wait(timeout=timeout)
    assert proc.stderr is not None
    with proc.stderr:
        return code, proc.stderr.read()


def start_writer(db: Path, *args: str) -> subprocess.Popen[str]:
    writer = spawn(str(db), *args, command=(sys.executable, str(WRITER)))
    assert writer.stdout is not None
    line = writer.stdout.readline()
    assert line.startswith("STARTED"), writer.stderr.read() if writer.stderr else line
    return writer


@pytest.fixture(scope="module")
def failed_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A journal holding one FAILED run, ``broken``: a retried step, a stream, an error."""
    db = tmp_path_factory.mktemp("cli") / "failed.db"
    writer = start_writer(db, "fail", "broken")
    out, err = writer.communicate(timeout=30)
    assert out.strip() == "DONE FAILED", err
    return db


def assert_one_error_line(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, (result.args, result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert text in result.stderr, result.stderr


# -- logs --tail across processes ------------------------------------------------------


def test_tail_follows_another_process_and_exits_when_the_run_ends(tmp_path: Path) -> None:
    db, gate, n = tmp_path / "live.db", tmp_path / "gate", 40
    # The writer commits half the entries, then waits for the gate: the tails below
    # replay that half, and must follow the other half live, as it is committed.
    writer = start_writer(db, "stream", "live", str(n), "0.01", str(gate))
    one = spawn("--db", str(db), "logs", "live", "--key", "tokens", "--tail")
    every = spawn("logs", "live", "--tail", "--json", "--db", str(db))
    # A step that wrote nothing yet may still come: the tail waits for the run to end.
    nope = spawn("--db", str(db), "logs", "live", "--tail", "--step", "nope")
    one_lines, every_lines = Lines(one), Lines(every)
    first = one_lines.take(n // 2)
    first_json = every_lines.take(n // 2 + 2)  # + events 0 and 1
    assert writer.poll() is None  # still running, waiting for the gate
    assert nope.poll() is None
    gate.touch()

    rest = one_lines.rest()
    assert finish(one) == (0, "")
    rest_json = every_lines.rest()
    assert finish(every) == (0, "")
    out, _ = writer.communicate(timeout=15)
    assert out.strip() == "DONE COMPLETED"
    nope_out, nope_err = nope.communicate(timeout=15)
    assert_one_error_line(
        subprocess.CompletedProcess(nope.args, nope.returncode, nope_out, nope_err),
        1,
        "run 'live' has no step 'nope' (its steps: 'produce');",
    )

    lines = first + rest
    fields = [line.rstrip("\n").split("\t") for line in lines]
    assert [f[:4] for f in fields] == [["tokens", str(i), "produce", "1"] for i in range(n)]
    assert [json.loads(f[4])["i"] for f in fields] == list(range(n))  # in order, once each
    assert not any(ANSI in line for line in lines)

    entries = [json.loads(line) for line in first_json + rest_json]
    by_key: dict[str, list[dict[str, object]]] = {}
    for entry in entries:
        assert entry["run_id"] == "live"
        by_key.setdefault(str(entry["key"]), []).append(entry)
    assert sorted(by_key) == ["events", "tokens"]
    assert [e["offset"] for e in by_key["tokens"]] == list(range(n))
    assert [e["value"]["i"] for e in by_key["tokens"]] == list(range(n))  # type: ignore[index]
    assert [e["value"] for e in by_key["events"]] == [f"event {k}" for k in range(n // 10)]


def test_ctrl_c_stops_a_tail_quietly(tmp_path: Path) -> None:
    db = tmp_path / "idle.db"
    writer = start_writer(db, "idle", "idle", "30")
    try:
        (demo,) = cli(["--db", str(db), "demo"])  # the writer holds the journal's lock
        assert_one_error_line(demo, 1, f"cannot run the demo on {str(db)!r}")
        tail = spawn("--db", str(db), "logs", "idle", "--tail", command=DEFAULT_SIGINT)
        assert Lines(tail).take(1) == ["status\t0\tdoze\t1\tready\n"]  # it is following
        tail.send_signal(signal.SIGINT)
        assert finish(tail) == (130, "")  # quietly: no traceback, no message
    finally:
        writer.kill()
        writer.communicate(timeout=10)


# -- runs, show, logs ------------------------------------------------------------------


def test_runs_lists_one_plain_line_per_run(failed_db: Path) -> None:
    db = str(failed_db)
    # The console script, run alongside: it is the same program as `python -m actorflow`.
    script = Path(sys.executable).with_name("actorflow")
    console = spawn("--db", db, "runs", command=[str(script)]) if script.exists() else None
    every, failed, completed, limited, after = cli(
        ["--db", db, "runs"],
        ["--db", db, "runs", "--status", "failed"],
        ["--db", db, "runs", "--status", "COMPLETED"],
        ["--db", db, "runs", "--limit", "1"],
        ["runs", "--db", db],
    )
    for result in (every, failed, completed, limited, after):
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        assert ANSI not in result.stdout
    run_id, workflow, status, started, duration = every.stdout.rstrip("\n").split("\t")
    assert (run_id, workflow, status) == ("broken", "broken", "FAILED")
    assert started.startswith("20")
    assert duration.endswith("s")
    assert failed.stdout == limited.stdout == after.stdout == every.stdout
    assert completed.stdout == ""
    if console is not None:
        out, err = console.communicate(timeout=30)
        assert (console.returncode, out, err) == (0, every.stdout, "")


def test_show_tells_steps_attempts_streams_and_the_error(failed_db: Path) -> None:
    (full, prefix) = cli(
        ["--db", str(failed_db), "show", "broken"], ["show", "brok", "--db", str(failed_db)]
    )
    assert full.returncode == 0, full.stderr
    assert prefix.stdout == full.stdout  # an unambiguous prefix of the id is enough
    text = full.stdout
    assert ANSI not in text
    lines = text.splitlines()
    assert "FAILED" in lines[2]
    step = next(line.split() for line in lines if line.lstrip().startswith("flaky"))
    assert step[:3] == ["flaky", "COMPLETED", "2"]  # step, status, attempts
    assert any(
        "attempt 1" in line and "ConnectionError: the model hung up" in line for line in lines
    )
    assert any("attempt 2" in line and "ok" in line for line in lines)
    stream = next(line.split() for line in lines if line.lstrip().startswith("notes"))
    assert stream == ["notes", "3", "closed"]
    assert "ValueError: the answer was not valid JSON" in text
    assert "Traceback (most recent call last):" in text


def test_logs_prints_entries_filters_them_and_escapes_control_characters(failed_db: Path) -> None:
    db = str(failed_db)
    plain, step, offset, as_json, tail = cli(
        ["--db", db, "logs", "broken"],
        ["--db", db, "logs", "broken", "--step", "flaky"],
        ["--db", db, "logs", "broken", "--key", "notes", "--from", "1"],
        ["--db", db, "logs", "broken", "--json"],
        ["--db", db, "logs", "broken", "--tail"],  # the run has ended: prints, then exits
    )
    for result in (plain, step, offset, as_json, tail):
        assert result.returncode == 0, result.stderr
        assert ANSI not in result.stdout
    assert plain.stdout.splitlines() == [
        "notes\t0\tflaky\t1\tattempt 1",
        "notes\t1\tflaky\t2\tattempt 2",
        "notes\t2\tmain\t1\tred \\x1b[31malert\\x1b[0m\\nsecond line\\tand a tab",
    ]
    assert tail.stdout == plain.stdout
    assert step.stdout.splitlines() == plain.stdout.splitlines()[:2]
    assert offset.stdout.splitlines() == plain.stdout.splitlines()[1:]
    entries = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [(e["offset"], e["step_id"], e["attempt"]) for e in entries] == [
        (0, "flaky", 1),
        (1, "flaky", 2),
        (2, "main", 1),
    ]
    assert entries[2]["value"] == "red \x1b[31malert\x1b[0m\nsecond line\tand a tab"


DEMO_ANSWER = (
    "Durable workflows keep their promises: every step is journaled, every token is "
    "streamed live and written to disk, and a crash only costs the step that was running."
)


def test_demo_kills_its_worker_midway_and_a_new_one_resumes_the_run(tmp_path: Path) -> None:
    started = time.monotonic()
    results = cli(
        ["--db", str(tmp_path / "a.db"), "demo"],
        ["demo", "--backend", "trio", "--db", str(tmp_path / "t.db")],
    )
    assert time.monotonic() - started < 30  # two demos at once, on a shared machine
    for result, db in zip(results, ("a.db", "t.db"), strict=True):
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        assert ANSI not in result.stdout
        out = result.stdout
        lines = out.splitlines()
        run_id = next(line.split()[1] for line in lines if line.startswith("run "))
        assert run_id.startswith("demo-")
        killed = next(i for i, line in enumerate(lines) if "💥 worker killed (SIGKILL)" in line)
        resumed = next(i for i, line in enumerate(lines) if "↻ attempt 2 resumes" in line)
        assert killed < resumed
        assert "mid-answer, after 11 tokens" in lines[killed]
        # The reader showed attempt 1 up to the kill, then attempt 2 from its start.
        live = " ".join(line.strip() for line in lines[resumed + 1 :]).split("answer ")[0]
        assert live.strip() == DEMO_ANSWER
        (answer,) = (line for line in lines if line.startswith("answer "))
        assert answer == "answer    " + DEMO_ANSWER  # the run's output, once
        assert "attempt 1 (cut off)" in out  # the replay from the file, by attempt
        assert "cut off" in next(line for line in lines if "└ attempt 1" in line)
        generate = next(line.split() for line in lines if line.lstrip().startswith("generate "))
        assert generate[:3] == ["generate", "COMPLETED", "2"]
        path = str(tmp_path / db)
        assert f"actorflow --db {path} logs {run_id} --tail" in out
        assert f"actorflow --db {path} show {run_id}" in out

    run_id = next(line.split()[1] for line in results[0].stdout.splitlines() if line[:4] == "run ")
    (logs,) = cli(["--db", str(tmp_path / "a.db"), "logs", run_id, "--key", "tokens"])
    fields = [line.split("\t") for line in logs.stdout.splitlines()]
    assert fields[0][:5] == ["tokens", "0", "generate", "1", "Durable "]
    attempts = [f[3] for f in fields]
    assert attempts.count("1") >= 11  # what worker 1 committed before it was killed
    assert attempts[-28:] == ["2"] * 28  # attempt 2 wrote the whole answer
    assert "".join(f[4] for f in fields[-28:]) == DEMO_ANSWER + " "


def test_an_interrupted_demo_leaves_no_worker_and_the_next_demo_cancels_its_run(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "demo.db")
    first = spawn("--db", db, "demo", "--pace", "0.5", command=DEFAULT_SIGINT)
    lines = Lines(first)
    head: list[str] = []
    while not head or not head[-1].startswith("worker 1 (pid "):
        head += lines.take(1)
    run_id = next(line.split()[1] for line in head if line.startswith("run "))
    worker = int(head[-1].split()[3].rstrip(")"))
    first.send_signal(signal.SIGINT)  # mid-answer: the run is RUNNING, its worker too
    assert finish(first) == (130, "")
    lines.rest()
    with pytest.raises(ProcessLookupError):  # the worker was killed (and reaped)
        os.kill(worker, 0)
    (runs,) = cli(["--db", db, "runs"])
    assert runs.stdout.split()[:3] == [run_id, "demo_chat", "RUNNING"]

    (second,) = cli(["--db", db, "demo", "--pace", "0.01"])
    assert second.returncode == 0, second.stderr
    out = second.stdout
    assert f"cancelled 1 unfinished run(s) of earlier demos: {run_id}" in out, out
    assert "answer    " + DEMO_ANSWER in out.splitlines()
    (after,) = cli(["--db", db, "runs"])
    statuses = [line.split("\t")[:3] for line in after.stdout.splitlines()]
    assert statuses[0] == [run_id, "demo_chat", "CANCELLED"]  # not resumed
    assert statuses[1][1:] == ["demo_chat", "COMPLETED"]
    (logs,) = cli(["--db", db, "logs", run_id])
    assert {line.split("\t")[3] for line in logs.stdout.splitlines()} <= {"1"}  # no attempt 2


@pytest.mark.parametrize(
    ("env", "on_path", "expected"),
    [
        ({}, {"actorflow"}, "actorflow"),
        ({}, {"python3"}, "python3 -m actorflow"),
        ({}, set(), "{python} -m actorflow"),
        ({"UV": "/bin/uv"}, set(), "uv run actorflow"),
        ({"UV": "/bin/uv"}, {"venv:actorflow"}, "uv run actorflow"),  # uv run's PATH only
        ({"UV": "/bin/uv"}, {"actorflow"}, "actorflow"),
    ],
)
def test_demo_says_next_commands_that_work_in_the_users_shell(
    tmp_path: Path, env: dict[str, str], on_path: set[str], expected: str
) -> None:
    from actorflow._cli._demo_command import command_prefix

    shell, venv = tmp_path / "bin", tmp_path / "venv" / "bin"
    shell.mkdir()
    venv.mkdir(parents=True)
    python = venv / "python"
    python.touch(mode=0o755)
    for name in on_path:
        where, _, name = name.rpartition(":")
        target = venv / name if where == "venv" else shell / name
        if name == "python3":
            target.symlink_to(python)
        else:
            target.touch(mode=0o755)
    path = os.pathsep.join([str(venv), str(shell)] if env else [str(shell)])
    got = command_prefix({**env, "PATH": path}, str(python))
    assert got == expected.format(python=python)


def on_a_terminal(*argv: str, env: dict[str, str] | None = None) -> str:
    """The output of ``actorflow ARGV`` run with a pseudo-terminal as its stdout."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "actorflow", *argv],
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,  # an error shows in the assertion
        env=_env() if env is None else env,
    )
    # The terminal stays open on this side until the output is read: Linux may
    # drop what is still buffered when the last holder of the secondary closes it.
    chunks = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            exited = proc.poll() is not None
            ready, _, _ = select.select([primary], [], [], 0.2 if exited else 0.05)
            if ready:
                chunks.append(os.read(primary, 65536))
            elif exited:
                break
    finally:
        os.close(secondary)
        os.close(primary)
    out = b"".join(chunks).decode().replace("\r\n", "\n")
    assert proc.wait(timeout=30) == 0, out
    return out


def _uncoloured(text: str) -> str:
    return re.sub("\x1b\\[[0-9;]*m", "", text)


def test_a_terminal_gets_colour_and_a_header(failed_db: Path) -> None:
    coloured = on_a_terminal("--db", str(failed_db), "runs")
    assert ANSI in coloured
    assert "STATUS" in coloured  # the header
    # NO_COLOR takes the colour away, not the header or the alignment.
    plain = on_a_terminal("--db", str(failed_db), "runs", env={**_env(), "NO_COLOR": "1"})
    assert ANSI not in plain
    assert plain == _uncoloured(coloured)
    assert plain.splitlines()[0].split() == ["RUN", "WORKFLOW", "STATUS", "STARTED", "DURATION"]


def test_terminal_logs_stay_aligned_as_offsets_grow(tmp_path: Path) -> None:
    db = tmp_path / "many.db"
    writer = start_writer(db, "stream", "many", "12", "0", "-")
    out, err = writer.communicate(timeout=30)
    assert out.strip() == "DONE COMPLETED", err
    lines = _uncoloured(on_a_terminal("--db", str(db), "logs", "many", "--key", "tokens"))
    lines_list = lines.splitlines()
    assert len(lines_list) == 12, lines
    assert lines_list[9].startswith("tokens:9 ")
    assert lines_list[10].startswith("tokens:10 ")
    # The step and the value start in the same column on every line.
    assert len({line.index("produce") for line in lines_list}) == 1, lines
    assert len({line.index("{") for line in lines_list}) == 1, lines


def test_version(tmp_path: Path) -> None:
    import actorflow

    (version,) = cli(["--version"])
    assert (version.returncode, version.stdout, version.stderr) == (
        0,
        f"actorflow {actorflow.__version__}\n",
        "",
    )


def test_actorflow_journal_is_the_default_db(failed_db: Path, tmp_path: Path) -> None:
    """Without --db, commands read $ACTORFLOW_JOURNAL; an explicit --db still wins."""
    env = {**_env(), "ACTORFLOW_JOURNAL": str(failed_db)}
    run = [sys.executable, "-m", "actorflow"]
    listed = subprocess.run([*run, "runs"], env=env, capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("broken\tbroken\tFAILED\t")
    elsewhere = str(tmp_path / "absent.db")
    other = subprocess.run(
        [*run, "runs", "--db", elsewhere], env=env, capture_output=True, text=True, timeout=30
    )
    assert other.returncode == 1
    assert "absent.db" in other.stderr


# -- errors ----------------------------------------------------------------------------


@pytest.fixture
def foreign_files(tmp_path: Path) -> tuple[Path, Path]:
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 20)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    return text, other


def test_errors_are_one_line_without_a_traceback(
    failed_db: Path, tmp_path: Path, foreign_files: tuple[Path, Path]
) -> None:
    text, other = foreign_files
    db, missing = str(failed_db), tmp_path / "missing.db"
    cases: list[tuple[list[str], int, str]] = [
        (["--db", str(missing), "runs"], 1, "no journal at"),
        (["--db", str(text), "runs"], 1, "is not an actorflow journal"),
        (["--db", str(other), "show", "x"], 1, "not an actorflow journal"),
        (["--db", str(tmp_path), "runs"], 1, "actorflow: error:"),  # a directory
        (["--db", db, "show", "nope"], 1, "no run 'nope'"),
        (["--db", db, "logs", "nope", "--tail"], 1, "no run 'nope'"),
        (["--db", db, "logs", "broken", "--key", "missing"], 1, "has no stream 'missing'"),
        (["--db", db, "logs", "broken", "--step", "nope"], 1, "(its steps: 'flaky', 'main')"),
        ([], 2, "the following arguments are required: COMMAND"),
        (["explode"], 2, "invalid choice: 'explode'"),
        (["--db", db, "runs", "--limit", "0"], 2, "expected a number >= 1"),
        (["--db", db, "runs", "--status", "asleep"], 2, "invalid choice: 'ASLEEP'"),
        (["--db", db, "logs", "broken", "--from", "-1"], 2, "expected an offset"),
        (["--db", db, "logs", "broken", "--key", "no spaces"], 2, "invalid stream key"),
        (["--db", db, "logs", "broken", "--follow"], 2, "unrecognized arguments: --follow"),
    ]
    results = cli(*(argv for argv, _, _ in cases))
    for (_, code, message), result in zip(cases, results, strict=True):
        assert_one_error_line(result, code, message)
    assert not missing.exists()  # a reader never creates a journal
    assert not Path(f"{missing}-lock").exists()


def _damaged_copy(db: Path, to: Path, *statements: str) -> Path:
    """A copy of journal ``db`` (its WAL included) with ``statements`` run on it."""
    source, copy = sqlite3.connect(db), sqlite3.connect(to)
    with contextlib.closing(source), contextlib.closing(copy):
        source.backup(copy)
        for statement in statements:
            copy.execute(statement)
        copy.commit()
    return to


def test_a_damaged_journal_is_one_line_for_every_command(failed_db: Path, tmp_path: Path) -> None:
    # A run status this version does not know (a newer actorflow's), records and
    # entries that do not decode, and pages overwritten with garbage.
    status = _damaged_copy(failed_db, tmp_path / "status.db", "UPDATE runs SET status = 'WHAT'")
    records = _damaged_copy(failed_db, tmp_path / "records.db", "UPDATE records SET body = x'c1'")
    entries = _damaged_copy(
        failed_db, tmp_path / "entries.db", "UPDATE stream_entries SET value = x'c1'"
    )
    pages = _damaged_copy(failed_db, tmp_path / "pages.db", "PRAGMA journal_mode = DELETE")
    with pages.open("r+b") as f:
        f.seek(2 * 4096)
        f.write(b"\xff" * 3 * 4096)
    reads = [
        ["runs"],
        ["show", "broken"],
        ["logs", "broken"],
        ["logs", "broken", "--tail"],
        ["logs", "broken", "--step", "nope"],
    ]
    cases = [(status, argv) for argv in reads]
    cases += [(records, ["show", "broken"]), (records, ["logs", "broken", "--step", "nope"])]
    cases += [(entries, ["logs", "broken"]), (entries, ["logs", "broken", "--json"])]
    cases += [(pages, argv) for argv in reads[1:]]
    results = cli(*(["--db", str(db), *argv] for db, argv in cases))
    for (db, _), result in zip(cases, results, strict=True):
        assert_one_error_line(result, 1, f"actorflow: error: cannot read {str(db)!r}")


@pytest.mark.parametrize(
    ("raised", "code", "err"),
    [
        (ExceptionGroup("g", [JournalError("the journal broke")]), 1, "the journal broke"),
        (sqlite3.DatabaseError("file is not a database"), 1, "file is not a database"),
        (BaseExceptionGroup("g", [KeyboardInterrupt()]), 130, ""),
    ],
)
def test_errors_a_task_group_wraps_are_one_line_too(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    raised: BaseException,
    code: int,
    err: str,
) -> None:
    import actorflow._cli as command_line

    async def fails(*_: object) -> None:
        raise raised

    monkeypatch.setitem(command_line._COMMANDS, "runs", fails)
    assert command_line.main(["runs"]) == code
    captured = capsys.readouterr()
    assert captured.out == ""
    if err:
        assert captured.err.startswith("actorflow: error: ")
        assert captured.err.count("\n") == 1
    assert err in captured.err


# -- serve ---------------------------------------------------------------------------

EXAMPLES = Path(__file__).parent.parent / "examples"


def _serving(lines: Lines) -> str:
    """The base URL that ``actorflow serve`` says it serves on."""
    (line,) = lines.take(1)
    assert line.startswith("serving http://127.0.0.1:"), line
    return line.split()[1]


def _sse(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs of a text/event-stream response."""
    return ((ev.event, ev.json()) for ev in iter_events(response))


def test_serve_streams_a_journal_that_another_process_writes(tmp_path: Path) -> None:
    db, gate, n = tmp_path / "live.db", tmp_path / "gate", 40
    writer = start_writer(db, "stream", "live", str(n), "0.01", str(gate))
    server = spawn("--db", str(db), "serve", "--port", "0")
    base = _serving(Lines(server))
    with httpx.Client(base_url=base, timeout=15) as client:
        assert client.get("/runs/live").json()["status"] == "RUNNING"
        assert client.post("/workflows/produce").status_code == 404  # read-only: none
        assert client.get("/runs/nope").status_code == 404
        offsets = []
        with client.stream("GET", "/runs/live/streams/tokens") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            events = _sse(response)
            for _ in range(n // 2):  # replayed: the writer waits at the gate
                _event, data = next(events)
                offsets.append(data["offset"])
            gate.touch()
            rest = list(events)  # followed live, from the other process's commits
        assert [d["offset"] for e, d in rest if e == "message"] == list(range(n // 2, n))
        assert offsets == list(range(n // 2))
        assert rest[-1] == ("end", {"run_id": "live", "status": "COMPLETED", "error": None})
    out, _ = writer.communicate(timeout=15)
    assert out.strip() == "DONE COMPLETED"
    server.send_signal(signal.SIGINT)
    assert finish(server) == (130, "")  # an interrupt, as every command


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_serve_with_a_workflow_starts_it_and_stops_on_ctrl_c(tmp_path: Path, backend: str) -> None:
    db, spec = tmp_path / "chat.db", f"{EXAMPLES / 'web_chat.py'}:chat"
    server = spawn(
        "serve", "--db", str(db), "--port", "0", "--backend", backend, "--workflow", spec
    )
    base = _serving(Lines(server))
    with httpx.Client(base_url=base, timeout=15) as client:
        assert client.get("/workflows").json() == {"workflows": ["chat"]}
        started = client.post("/workflows/chat", json={"input": "hi", "run_id": "one"})
        assert started.status_code == 202, started.text
        with client.stream("GET", "/runs/one/streams/tokens") as response:
            events = list(_sse(response))
        text = "".join(d["value"] for e, d in events if e == "message")
        assert text.startswith("You asked: 'hi'.")
        assert events[-1][0] == "end"
        assert events[-1][1]["status"] == "COMPLETED"
        assert client.get("/runs/one").json()["output"] == text
    server.send_signal(signal.SIGINT)
    assert finish(server) == (130, "")  # an interrupt, as every command


def test_serve_errors_are_one_line(tmp_path: Path) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = str(busy.getsockname()[1])
    spec = f"{EXAMPLES / 'web_chat.py'}:chat"
    with busy:
        missing, no_file, no_name, bad_spec, in_use = cli(
            ["--db", str(tmp_path / "none.db"), "serve"],
            ["--db", str(tmp_path / "a.db"), "serve", "--workflow", "nowhere.py:chat"],
            [
                "--db",
                str(tmp_path / "b.db"),
                "serve",
                "--workflow",
                f"{EXAMPLES / 'web_chat.py'}:x",
            ],
            ["--db", str(tmp_path / "c.db"), "serve", "--workflow", "chat"],
            ["--db", str(tmp_path / "d.db"), "serve", "--port", port, "--workflow", spec],
        )
    assert_one_error_line(missing, 1, "no journal at")
    assert not (tmp_path / "none.db").exists()
    assert_one_error_line(no_file, 1, "no such file 'nowhere.py'")
    assert_one_error_line(no_name, 1, "has no @af.workflow named 'x'")
    assert_one_error_line(bad_spec, 1, "give MODULE:NAME")
    assert_one_error_line(in_use, 1, f"cannot listen on 127.0.0.1:{port}")
    (bad_port,) = cli(["serve", "--port", "70000"])
    assert bad_port.returncode == 2
    assert "not a TCP port" in bad_port.stderr
