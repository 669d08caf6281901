"""Tools for testing workflows and journal backends (``actorflow.testing``).

- :class:`VirtualClock` and :func:`virtual_time_backend`: run a runtime in
  virtual time on asyncio or trio, with the wall time in records following
  it across restarts, so a 24-hour durable sleep test takes milliseconds.
- :class:`CrashingJournal`, :class:`CrashPlan`: crashes at an exact, named
  journal append, with SIGKILL semantics, in-process.
- :class:`Harness` (:func:`harness`): runtimes over one journal, crashed and
  restarted as a plan says, whose operations and readers survive crashes;
  :func:`all_crash_plans` enumerates every single and double crash point.
- :func:`fail_attempts`, :class:`FaultyJournal`: failing step attempts, slow
  or failing commits, without changing the workflow's code.
- Checkers (:func:`check_exactly_once`, ...) that understand attempts, and
  hypothesis strategies (:func:`crash_plans`, :func:`moments`, ...).
- :func:`check_journal`: the conformance suite every
  :class:`actorflow.abc.Journal` backend must pass.

The strategies and :func:`check_journal` need ``hypothesis`` (the ``testing``
extra: ``pip install '.[testing]'`` in a checkout); the pytest plugin is
:mod:`actorflow.testing.pytest_plugin`.
"""

import importlib
from typing import TYPE_CHECKING, Any

from .._eventloop import virtual_time_backend
from ._checkers import (
    CheckFailed,
    check_attempts,
    check_exactly_once,
    check_live_gaps,
    check_live_recording,
    check_offsets,
    check_order,
    check_prefix,
    final_attempt_values,
)
from ._clock import VirtualClock
from ._crash import CrashingJournal, CrashPlan, SimulatedCrash, describe_record
from ._faults import FaultyJournal, InjectedFault, fail_attempts
from ._harness import Harness, harness
from ._lives import Life
from ._plans import Scenario, all_crash_plans, appends_per_life, crash_points
from ._recordings import LiveRecording, StreamRecording
from ._schedule import Deadlock, advance, seed_schedule, settle

if TYPE_CHECKING:
    from ._conformance import check_journal
    from ._machine import RuntimeStateMachine
    from ._strategies import crash_plans, encodable_values, moments, seeds

# These need hypothesis: imported when first used, so that importing this
# package (the pytest plugin does, for everyone who has actorflow) never fails.
_NEEDS_HYPOTHESIS = {
    "RuntimeStateMachine": "._machine",
    "check_journal": "._conformance",
    "crash_plans": "._strategies",
    "encodable_values": "._strategies",
    "moments": "._strategies",
    "seeds": "._strategies",
}


def __getattr__(name: str) -> Any:
    module = _NEEDS_HYPOTHESIS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(module, __name__), name)
    except ImportError as exc:
        if exc.name != "hypothesis":
            raise
        raise ImportError(
            f"actorflow.testing.{name} needs hypothesis; install the extra: "
            "pip install 'actorflow[testing]'"
        ) from exc
    globals()[name] = value
    return value


__all__ = (
    "CheckFailed",
    "CrashPlan",
    "CrashingJournal",
    "Deadlock",
    "FaultyJournal",
    "Harness",
    "InjectedFault",
    "Life",
    "LiveRecording",
    "RuntimeStateMachine",
    "Scenario",
    "SimulatedCrash",
    "StreamRecording",
    "VirtualClock",
    "advance",
    "all_crash_plans",
    "appends_per_life",
    "check_attempts",
    "check_exactly_once",
    "check_journal",
    "check_live_gaps",
    "check_live_recording",
    "check_offsets",
    "check_order",
    "check_prefix",
    "crash_plans",
    "crash_points",
    "describe_record",
    "encodable_values",
    "fail_attempts",
    "final_attempt_values",
    "harness",
    "moments",
    "seed_schedule",
    "seeds",
    "settle",
    "virtual_time_backend",
)
