"""`actorflow logs --tail` across processes: commit-to-printed latency, and the cost of waiting.

    python benchmarks/bench_cli.py [--entries N] [--json out.json] [--baseline old.json]

Two real processes on a SQLite journal in a temp dir: a runtime
(``tests/programs/stream_writer.py``) writes a durable stream, and
``python -m actorflow logs RUN --tail --json`` follows it. Measures:
  - latency from the write (the writer stamps ``time.time()`` into each value,
    just before the entry is queued for commit) to the line arriving on the
    tail's stdout, read by this process; p50 / p99 / max (target p99 <= 20 ms).
    Only live entries count: the writer waits for the tail to have printed the
    first half (replay) before writing the second half. Measured on a busy
    stream (an entry every 5 ms, ``latency_*``) and a sparse one (every 50 ms,
    ``sparse_*``), where the follower has backed off between commits.
  - CPU used by a tail that follows a run which writes nothing, over 5 s, in
    percent of one core, from ``/proc/<pid>/stat`` (target <= 5%).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import add_report_args, load_baseline, save, table

WRITER = Path(__file__).parent.parent / "tests" / "programs" / "stream_writer.py"
IDLE_SECONDS = 5.0

TARGETS = {
    "latency_p99_ms": ("<=", 20.0),
    "sparse_p99_ms": ("<=", 20.0),
    "idle_cpu_percent": ("<=", 5.0),
}


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )


def _wait_started(writer: subprocess.Popen[str]) -> None:
    assert writer.stdout is not None
    line = writer.stdout.readline()
    if not line.startswith("STARTED"):
        raise RuntimeError(
            f"the writer did not start: {line!r} {writer.stderr and writer.stderr.read()}"
        )


def measure_latency(tmp: Path, entries: int, delay: float, name: str) -> dict[str, float]:
    db, gate = tmp / f"{name}.db", tmp / f"{name}.gate"
    half = entries // 2
    writer = _spawn(str(WRITER), str(db), "stream", "lat", str(entries), str(delay), str(gate))
    try:
        _wait_started(writer)
        tail = _spawn(
            "-m", "actorflow", "--db", str(db), "logs", "lat", "--key", "tokens", "--tail", "--json"
        )
        assert tail.stdout is not None
        latencies: list[float] = []
        for n, line in enumerate(tail.stdout):
            received = time.time()
            value = json.loads(line)["value"]
            if value["i"] >= half:
                latencies.append((received - value["t"]) * 1000)
            if n == half - 1:
                gate.touch()  # the replayed half is printed: the rest is live
        tail.wait(timeout=30)
        if tail.returncode != 0:
            raise RuntimeError(f"the tail failed: {tail.stderr and tail.stderr.read()}")
        if len(latencies) != entries - half:
            raise RuntimeError(
                f"the tail printed {len(latencies)} live entries, not {entries - half}"
            )
    finally:
        writer.wait(timeout=30)
    latencies.sort()
    return {
        f"{name}_p50_ms": statistics.median(latencies),
        f"{name}_p99_ms": latencies[min(len(latencies) - 1, round(len(latencies) * 0.99))],
        f"{name}_max_ms": latencies[-1],
    }


def _cpu_seconds(pid: int) -> float:
    # Fields 14 and 15 of /proc/<pid>/stat: utime and stime, in clock ticks. The
    # command name (field 2) may hold spaces, so split after its closing paren.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_idle(tmp: Path) -> dict[str, float]:
    db = tmp / "idle.db"
    writer = _spawn(str(WRITER), str(db), "idle", "idle", str(IDLE_SECONDS + 10))
    try:
        _wait_started(writer)
        tail = _spawn("-m", "actorflow", "--db", str(db), "logs", "idle", "--tail")
        try:
            time.sleep(1.5)  # past start-up: imports, opening the journal, the first read
            if tail.poll() is not None:
                raise RuntimeError(f"the tail exited early: {tail.stderr and tail.stderr.read()}")
            cpu0, t0 = _cpu_seconds(tail.pid), time.perf_counter()
            time.sleep(IDLE_SECONDS)
            cpu1, t1 = _cpu_seconds(tail.pid), time.perf_counter()
        finally:
            tail.send_signal(signal.SIGINT)
            try:
                tail.wait(timeout=10)
            except subprocess.TimeoutExpired:  # SIGINT ignored: started in the background
                tail.kill()
                tail.wait()
    finally:
        writer.terminate()
        writer.wait(timeout=10)
    return {
        "idle_cpu_percent": (cpu1 - cpu0) / (t1 - t0) * 100,
        "tail_exit_on_ctrl_c": float(tail.returncode),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=600, help="entries written (half live)")
    parser.add_argument("--delay", type=float, default=0.005, help="seconds between writes")
    parser.add_argument(
        "--sparse-entries", type=int, default=100, help="entries of the sparse run (half live)"
    )
    parser.add_argument(
        "--sparse-delay", type=float, default=0.05, help="seconds between its writes"
    )
    add_report_args(parser, backend=False)
    args = parser.parse_args()
    if not Path("/proc/self/stat").exists():
        sys.exit("bench_cli.py reads CPU time from /proc: run it on Linux")
    with tempfile.TemporaryDirectory() as tmp:
        results = measure_latency(Path(tmp), args.entries, args.delay, "latency")
        results |= measure_latency(Path(tmp), args.sparse_entries, args.sparse_delay, "sparse")
        results |= measure_idle(Path(tmp))
    print(
        "actorflow logs --tail across processes (latency: write -> line read from the tail): "
        f"{args.entries // 2} live entries {args.delay * 1000:g} ms apart (latency_*), "
        f"{args.sparse_entries // 2} entries {args.sparse_delay * 1000:g} ms apart (sparse_*); "
        f"idle tail over {IDLE_SECONDS:g} s"
    )
    print(table(results, load_baseline(args.baseline), TARGETS))
    save(results, args.json)


if __name__ == "__main__":
    main()
