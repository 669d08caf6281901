"""actorflow.testing: property examples/s with crashes, and state-machine steps/s.

    python benchmarks/bench_testing.py [--backend asyncio|trio] [--examples N]
                                       [--json out.json] [--baseline old.json]

The four user properties of examples/test_my_workflow.py, each run by
hypothesis as a user's test would be (``database=None``, no deadline), each
example in its own event loop in virtual time:
  (a) a reader attaching at a random moment reads every token once, in order,
      with up to 2 crashes at random appends (target >= 150 examples/s)
  (b) a slow drop_oldest subscriber sees order and every gap reported
  (c) an agent-loop graph ends within max_supersteps and equals a reference,
      with up to 2 crashes
  (d) a step failing k times: attempt-tagged entries, exact backoff delays
and the state machine of tests/test_testing_machine.py (sends, crashes,
advances of virtual time, an invariant after each step), in steps/s
(target >= 1,000). Each figure is the mean over all examples after a
warm-up of 5 examples (imports, first loops).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from _report import add_report_args, load_baseline, save, table
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test

import actorflow.testing as aft

ROOT = Path(__file__).resolve().parent.parent


def _load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def examples_per_second(
    backend: str, prop: Callable[..., Awaitable[None]], strategy: Any, n: int
) -> float:
    """Run ``prop`` as a hypothesis test of ``n`` examples; return examples/s."""
    calls = [0]

    def run(count: int) -> float:
        @settings(max_examples=count, database=None, deadline=None)
        @given(strategy)
        def test(args: tuple[Any, ...]) -> None:
            calls[0] += 1
            name, options = aft.virtual_time_backend(backend)
            anyio.run(prop, *args, backend=name, backend_options=options)

        started = time.perf_counter()
        test()
        return time.perf_counter() - started

    run(5)  # warm-up
    calls[0] = 0
    elapsed = run(n)
    return calls[0] / elapsed if elapsed else 0.0


def state_machine_steps_per_second(backend: str, examples: int) -> float:
    """Run the test suite's state machine; return rule steps (invariants included) per second."""
    machines = _load(ROOT / "tests" / "test_testing_machine.py", "bench_machine")
    steps = [0]

    examples_seen = [0]

    class Counted(machines.InboxMachine):  # type: ignore[misc, name-defined]
        # Hypothesis calls the rules it collected, not attributes of a subclass, so
        # steps are counted from run(): one per rule and one per invariant check,
        # which runs after the initialize rule and after every step.
        def __init__(self) -> None:
            examples_seen[0] += 1
            super().__init__()

        def run(self, fn: Any) -> Any:
            steps[0] += 1
            return super().run(fn)

    Counted.backend = backend
    run_state_machine_as_test(
        Counted, settings=settings(max_examples=2, stateful_step_count=20, deadline=None)
    )
    steps[0] = examples_seen[0] = 0
    started = time.perf_counter()
    run_state_machine_as_test(
        Counted,
        settings=settings(
            max_examples=examples, stateful_step_count=50, deadline=None, database=None
        ),
    )
    elapsed = time.perf_counter() - started
    rule_steps = steps[0] / 2 - examples_seen[0]  # each step: its rule and the invariant
    return rule_steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_report_args(parser)
    parser.add_argument("--examples", type=int, default=200)
    args = parser.parse_args()
    ex = _load(ROOT / "examples" / "test_my_workflow.py", "bench_examples")
    n = args.examples
    plans = aft.crash_plans(max_crashes=2, max_append=20)
    prop_a = ex.test_a_reader_reads_every_token_once_in_order.hypothesis.inner_test
    prop_c = ex.test_the_agent_loop_ends_and_equals_the_reference.hypothesis.inner_test
    results = {
        "(a) reader at a moment, crashes [examples/s]": examples_per_second(
            args.backend,
            lambda plan, moment: prop_a(plan=plan, moment=moment),
            st.tuples(plans, aft.moments(max_appends=20)),
            n,
        ),
        "(b) slow drop_oldest subscriber [examples/s]": examples_per_second(
            args.backend,
            ex.test_a_slow_subscriber_sees_order_and_every_gap_reported,
            st.just(()),
            n,
        ),
        "(c) agent loop, crashes [examples/s]": examples_per_second(
            args.backend, lambda plan: prop_c(plan=plan), st.tuples(plans), n
        ),
        "(d) failing attempts, exact backoff [examples/s]": examples_per_second(
            args.backend,
            ex.test_failed_attempts_are_tagged_and_backoff_is_exact,
            st.tuples(st.integers(1, 3)),
            n,
        ),
        "state machine [steps/s]": state_machine_steps_per_second(args.backend, max(4, n // 20)),
    }
    targets = {
        "(a) reader at a moment, crashes [examples/s]": (">=", 150.0),
        "(b) slow drop_oldest subscriber [examples/s]": (">=", 150.0),
        "(c) agent loop, crashes [examples/s]": (">=", 150.0),
        "(d) failing attempts, exact backoff [examples/s]": (">=", 150.0),
        "state machine [steps/s]": (">=", 1000.0),
    }
    print(f"actorflow.testing on {args.backend}, {n} examples per property")
    print(table(results, load_baseline(args.baseline), targets))
    save(dict(results), args.json)


if __name__ == "__main__":
    main()
