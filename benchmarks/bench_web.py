"""``actorflow.web`` over loopback: browser latency, 1,000 SSE clients, aggregate events/s.

Usage::

    python benchmarks/bench_web.py [--backend asyncio|trio] [--json out.json]
                                   [--baseline old.json] [--latency-events N]
                                   [--pace S] [--clients N] [--entries N]
                                   [--tput-clients N] [--tput-entries N]
                                   [--client-procs N] [--no-browser]

Three processes (or more) on one machine. The server is a child process: a
runtime over a SQLite journal in a temp dir, ``actorflow.web.app`` served by
``actorflow.web.serve`` (uvicorn on asyncio, hypercorn with ``--backend
trio``). The clients live elsewhere, so their CPU does not count against the
server's: a headless Chromium for (1), and ``--client-procs`` child processes
of httpx clients for (2) and (3). Every run waits at a gate (a file) until its
clients are connected, so all of its events are delivered live.

1. write -> browser latency: a step writes ``--latency-events`` entries, one
   every ``--pace`` s, each value the writer's ``time.time()`` taken just
   before ``write_stream``; a page's ``EventSource`` on
   ``/runs/{id}/streams/ticks`` stamps each arrival with
   ``performance.timeOrigin + performance.now()``. Latency = arrival - write;
   it includes the group commit (``write_stream`` returns before it). p50 /
   p99 / max; target p99 <= 50 ms.
2. ``--clients`` (1,000) httpx clients on one durable stream; the run writes
   ``--entries`` entries as fast as it can, then closes the stream. Every
   client must get every entry, in order (the event ids), then the ``end``
   event: errors must be 0. Also: the time for all clients to connect (from the
   first connect to the last response head), and the completion time (from the
   gate opening to the last client's ``end``).
3. aggregate events/s: ``--tput-clients`` (100) clients on a run writing
   ``--tput-entries`` entries; events delivered across the clients divided by
   the time from the first event byte any client received to the last.
   Target >= 20,000/s. The same figure for the run of (2) is shown too.

Also shown, for (2) and (3): the CPU the server and the clients spent per
connection while connecting and per delivered event while streaming (the
server's from ``/proc/<pid>/stat``, the clients' from ``time.process_time``).
On a shared machine wall-clock figures move with the load; these say which
side limits and move much less. httpx costs the clients less CPU per event than
the server spends, so it is not the bottleneck. The soft limit on open files is
raised to the hard one in every process (1,000 sockets need more than the
usual 1,024).

Linux only (``/proc``); needs ``httpx``, ``uvicorn``, ``hypercorn`` and
``playwright`` (with a system Chromium at ``/usr/bin/chromium``; ``--no-browser``
skips (1)).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _report import add_report_args, load_baseline, save, table

import actorflow as af

TOKEN = "token-" + "x" * 44  # ~50 bytes: a few LLM tokens
TOKEN_JSON = f'"value":"{TOKEN}"'.encode()
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

TARGETS = {
    "browser_latency_p99_ms": ("<=", 50.0),
    "fanout_errors": ("<=", 0.0),
    "tput_events_per_s": (">=", 20_000.0),
}


def raise_fd_limit() -> int:
    """Raise this process's soft limit on open files to the hard limit; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# -- the server's workflows ------------------------------------------------------------


async def wait_gate(gate: str) -> None:
    """Wait for the file ``gate``: the benchmark creates it once the clients are connected."""
    import anyio

    while not await anyio.Path(gate).exists():  # noqa: ASYNC110 - another process
        await anyio.sleep(0.005)


@af.step
async def tick(ctx: af.StepContext, spec: tuple[int, float, str]) -> int:
    """Write ``n`` wall-clock timestamps, one every ``pace`` seconds."""
    import anyio

    n, pace, gate = spec
    await wait_gate(gate)
    due = time.perf_counter()
    for _ in range(n):
        await ctx.write_stream("ticks", time.time())
        # A steady pace: catch up at most one interval after a stall, not a burst.
        now = time.perf_counter()
        due = max(due + pace, now - pace)
        if due > now:
            await anyio.sleep(due - now)
    return n


@af.workflow
async def ticker(ctx: af.WorkflowContext, spec: tuple[int, float, str]) -> int:
    n = await ctx.step(tick, spec)
    await ctx.close_stream("ticks")
    return n


@af.step
async def blast(ctx: af.StepContext, spec: tuple[int, str]) -> int:
    """Write ``n`` tokens as fast as the journal takes them."""
    n, gate = spec
    await wait_gate(gate)
    for _ in range(n):
        await ctx.write_stream("tokens", TOKEN)
    return n


@af.workflow
async def blaster(ctx: af.WorkflowContext, spec: tuple[int, str]) -> int:
    n = await ctx.step(blast, spec)
    await ctx.close_stream("tokens")
    return n


async def server_main(directory: str) -> None:
    """The server process: print ``PORT n`` once listening; stop when stdin closes."""
    import anyio

    import actorflow.web

    raise_fd_limit()
    journal = af.SQLiteJournal(Path(directory) / "web.db", synchronous="normal")
    async with af.Runtime(journal) as rt, anyio.create_task_group() as tg:
        app = actorflow.web.app(rt, workflows=[ticker, blaster], max_clients=100_000)

        def ready(port: int) -> None:
            print(f"PORT {port}", flush=True)

        tg.start_soon(lambda: actorflow.web.serve(app, port=0, ready=ready))
        await anyio.to_thread.run_sync(sys.stdin.buffer.read, abandon_on_cancel=True)
        tg.cancel_scope.cancel()


# -- SSE clients (a child process each) ------------------------------------------------


async def clients_main(url: str, count: int, expect: int) -> None:
    """``count`` httpx clients on ``url``: print ``CONNECTED`` once all have a response
    head, then (after the run) one JSON line with what they received."""
    import httpx

    raise_fd_limit()
    connected = 0
    all_connected = asyncio.Event()
    connect_times: list[float] = []
    first_byte: list[float] = []
    last_byte: list[float] = []
    errors: list[str] = []
    events = 0

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal connected, events
        started = time.perf_counter()
        try:
            async with http.stream("GET", url, headers={"accept": "text/event-stream"}) as r:
                if r.status_code != 200:
                    errors.append(f"HTTP {r.status_code}: {(await r.aread())[:200]!r}")
                    connected += 1
                    return
                connect_times.append(time.perf_counter() - started)
                connected += 1
                if connected == count:
                    all_connected.set()
                buf = b""
                next_id = 0
                ended = False
                first = 0.0
                async for chunk in r.aiter_raw():
                    if not first and b"id: " in chunk:
                        first = time.time()
                    buf += chunk
                    *complete, buf = buf.split(b"\n\n")
                    for ev in complete:
                        if ev.startswith(b"id: "):
                            offset = int(ev[4 : ev.index(b"\n")])
                            if offset != next_id or TOKEN_JSON not in ev:
                                errors.append(f"expected entry {next_id}, got {ev[:200]!r}")
                                return
                            next_id += 1
                        elif ev.startswith(b"event: end"):
                            ended = True
                        elif ev.startswith((b"retry:", b":")):
                            pass
                        else:
                            errors.append(f"unexpected event {ev[:200]!r}")
                            return
                last_byte.append(time.time())
                first_byte.append(first)
                events += next_id
                if next_id != expect or not ended:
                    errors.append(f"got {next_id} of {expect} entries, end event: {ended}")
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            if connected >= count:
                all_connected.set()

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    timeout = httpx.Timeout(120.0, connect=60.0, pool=None)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as http:
        connect_started = time.time()
        cpu_started = time.process_time()
        tasks = [asyncio.create_task(client(http)) for _ in range(count)]
        await all_connected.wait()
        connect_ended = time.time()
        cpu_connected = time.process_time()
        print("CONNECTED", flush=True)
        await asyncio.gather(*tasks)
    print(
        json.dumps(
            {
                "errors": errors[:20],
                "error_count": len(errors),
                "events": events,
                "connect_times": connect_times,
                "connect_started": connect_started,
                "connect_ended": connect_ended,
                "first_byte": min(first_byte, default=0.0),
                "last_byte": max(last_byte, default=0.0),
                "cpu_connecting": cpu_connected - cpu_started,
                "cpu_streaming": time.process_time() - cpu_connected,
            }
        ),
        flush=True,
    )


# -- the benchmark (this process) --------------------------------------------------------


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """The server child process, and HTTP calls to it."""

    def __init__(self, backend: str, directory: str) -> None:
        self.directory = directory
        self.proc = spawn("--server", directory, "--backend", backend)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the server did not start: {line!r}")
        self.base = f"http://127.0.0.1:{int(line.split()[1])}"
        self.runs = 0

    def start(self, workflow: str, spec: list[Any]) -> tuple[str, Path]:
        """Start a run waiting at a new gate file; return its id and the gate."""
        import httpx

        self.runs += 1
        gate = Path(self.directory) / f"gate-{self.runs}"
        r = httpx.post(
            f"{self.base}/workflows/{workflow}", json={"input": [*spec, str(gate)]}, timeout=30
        )
        r.raise_for_status()
        return r.json()["run_id"], gate

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


PAGE_JS = """(url) => {
    window.samples = [];
    window.opened = false;
    window.ended = null;
    const es = new EventSource(url);
    es.onopen = () => { window.opened = true; };
    es.onmessage = (e) => {
        window.samples.push([performance.timeOrigin + performance.now(), Date.now(), e.data]);
    };
    es.addEventListener("end", (e) => { window.ended = e.data; es.close(); });
    es.onerror = () => { window.errors = (window.errors || 0) + 1; };
}"""


def browser_latency(server: Server, events: int, pace: float) -> dict[str, float]:
    """(1): write -> EventSource latency in a headless Chromium, in ms."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{server.base}/workflows")  # same origin as the stream
            samples: list[float] = []
            skews: list[float] = []
            for n in (50, events):  # a warm-up run, then the measured one
                run_id, gate = server.start("ticker", [n, pace])
                page.evaluate(PAGE_JS, f"/runs/{run_id}/streams/ticks")
                page.wait_for_function("window.opened", timeout=30_000)
                gate.touch()
                page.wait_for_function("window.ended", timeout=60_000 + n * pace * 4_000)
                got = page.evaluate("window.samples")
                assert len(got) == n, (len(got), n)
                samples = [arrival - json.loads(data)["value"] * 1000 for arrival, _, data in got]
                skews = [abs(precise - coarse) for precise, coarse, _ in got]
        finally:
            browser.close()
    samples.sort()
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "browser_events": float(len(samples)),
        "browser_latency_p50_ms": cuts[49],
        "browser_latency_p99_ms": cuts[98],
        "browser_latency_max_ms": samples[-1],
        "browser_clock_skew_max_ms": max(skews),
    }


def fanout(server: Server, prefix: str, clients: int, entries: int, procs: int) -> dict[str, float]:
    """(2) / (3): ``clients`` httpx clients in ``procs`` processes on one run of ``entries``."""
    run_id, gate = server.start("blaster", [entries])
    url = f"{server.base}/runs/{run_id}/streams/tokens"
    procs = max(1, min(procs, clients))
    shares = [clients // procs + (i < clients % procs) for i in range(procs)]
    server_cpu_before = cpu_seconds(server.proc.pid)
    children = [spawn("--clients-child", url, str(share), str(entries)) for share in shares]
    try:
        for child in children:
            assert child.stdout is not None
            line = child.stdout.readline()
            if line.strip() != "CONNECTED":
                raise RuntimeError(f"a client process failed before connecting: {line!r}")
        server_cpu = cpu_seconds(server.proc.pid)
        connect_cpu = server_cpu - server_cpu_before
        opened = time.time()
        gate.touch()
        reports = []
        for child in children:
            assert child.stdout is not None
            reports.append(json.loads(child.stdout.readline()))
        server_cpu = cpu_seconds(server.proc.pid) - server_cpu
    finally:
        for child in children:
            if child.stdin is not None:
                child.stdin.close()
            child.wait()
    errors = sum(r["error_count"] for r in reports)
    connect_wall = max(r["connect_ended"] for r in reports) - min(
        r["connect_started"] for r in reports
    )
    for r in reports:
        for message in r["errors"]:
            print(f"  {prefix} client error: {message}", file=sys.stderr)
    delivered = sum(r["events"] for r in reports)
    first = min(r["first_byte"] for r in reports if r["first_byte"]) if delivered else 0.0
    last = max(r["last_byte"] for r in reports)
    connects = sorted(t for r in reports for t in r["connect_times"])
    client_cpu = sum(r["cpu_streaming"] for r in reports)
    per_event = 1e6 / delivered if delivered else 0.0
    return {
        f"{prefix}_clients": float(clients),
        f"{prefix}_errors": float(errors),
        f"{prefix}_events_delivered": float(delivered),
        f"{prefix}_connect_all_s": connect_wall,
        f"{prefix}_connect_p99_ms": statistics.quantiles(connects, n=100)[98] * 1000
        if len(connects) > 1
        else 0.0,
        f"{prefix}_connect_server_cpu_ms_per_client": connect_cpu * 1000 / clients,
        f"{prefix}_connect_client_cpu_ms_per_client": sum(r["cpu_connecting"] for r in reports)
        * 1000
        / clients,
        f"{prefix}_complete_s": last - opened,
        f"{prefix}_events_per_s": delivered / (last - first) if last > first else 0.0,
        f"{prefix}_server_cpu_us_per_event": server_cpu * per_event,
        f"{prefix}_client_cpu_us_per_event": client_cpu * per_event,
    }


def measure(args: argparse.Namespace) -> dict[str, float]:
    raise_fd_limit()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="actorflow-bench-") as directory:
        server = Server(args.backend, directory)
        try:
            if not args.no_browser:
                results.update(browser_latency(server, args.latency_events, args.pace))
            procs = args.client_procs
            results.update(fanout(server, "fanout", args.clients, args.entries, procs))
            results.update(fanout(server, "tput", args.tput_clients, args.tput_entries, procs))
        finally:
            server.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_report_args(parser)
    parser.add_argument("--latency-events", type=int, default=1_500, help="(1) entries")
    parser.add_argument("--pace", type=float, default=0.003, help="(1) seconds between writes")
    parser.add_argument("--clients", type=int, default=1_000, help="(2) SSE clients")
    parser.add_argument("--entries", type=int, default=200, help="(2) entries each gets")
    parser.add_argument("--tput-clients", type=int, default=100, help="(3) SSE clients")
    parser.add_argument("--tput-entries", type=int, default=2_000, help="(3) entries each gets")
    parser.add_argument("--client-procs", type=int, default=2, help="processes for the clients")
    parser.add_argument("--no-browser", action="store_true", help="skip (1)")
    parser.add_argument("--server", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--clients-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.server:
        import anyio

        anyio.run(server_main, args.server, backend=args.backend)
        return 0
    if args.clients_child:
        url, count, expect = args.clients_child
        asyncio.run(clients_main(url, int(count), int(expect)))
        return 0

    started = time.perf_counter()
    load = os.getloadavg()[0]
    results = measure(args)
    server = "uvicorn" if args.backend == "asyncio" else "hypercorn"
    print(
        f"actorflow.web on {args.backend} ({server}), {os.cpu_count()} CPUs, load average"
        f" {load:.2f} -> {os.getloadavg()[0]:.2f}, {time.perf_counter() - started:.0f} s;"
        f" clients in {args.client_procs} process(es); open files limit {raise_fd_limit()}"
    )
    print(table(results, load_baseline(args.baseline), TARGETS))
    save(results, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
