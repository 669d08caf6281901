"""Tools for testing workflows and journal backends (``actorflow.testing``).

- :class:`VirtualClock` and :func:`virtual_time_backend`: run a runtime in
  virtual time on asyncio or trio, with the wall time in records following
  it across restarts, so a 24-hour durable sleep test takes milliseconds.
- :func:`check_journal`: the conformance suite every
  :class:`actorflow.abc.Journal` backend must pass.

It needs ``hypothesis`` (the ``testing`` extra: ``pip install '.[testing]'`` in a checkout).
"""

from .._eventloop import virtual_time_backend
from ._clock import VirtualClock

try:
    from ._conformance import check_journal
except ImportError as exc:  # pragma: no cover - depends on the environment
    if exc.name != "hypothesis":
        raise
    raise ImportError(
        "actorflow.testing needs hypothesis; install the testing extra: pip install "
        "'.[testing]' in an actorflow checkout, or pip install "
        "'actorflow[testing] @ git+<clone URL>'"
    ) from exc

__all__ = ("VirtualClock", "check_journal", "virtual_time_backend")
