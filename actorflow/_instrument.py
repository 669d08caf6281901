"""Calling :class:`~actorflow.abc.Instrument` hooks: only those some instrument overrides.

:func:`hooks_of` looks once, when the runtime is made, at which hooks its
instruments override (the built-in logging one and the user's), and keeps a
callable for each hook that at least one overrides and ``None`` for the rest.
A call site then pays one attribute test when no hook is set (``if
hooks.step_started is not None``), which is what "nothing is paid when none is
set" means on the hot paths (stream writes, commits). A hook that several
instruments override calls each in turn, in the order given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import attrs

from .abc import Instrument

__all__ = ("HOOK_NAMES", "Hooks", "hooks_of")

_log = logging.getLogger("actorflow.instrument")

#: Every hook of :class:`~actorflow.abc.Instrument`, as :class:`Hooks` fields.
HOOK_NAMES = (
    "run_started",
    "run_finished",
    "run_stopped",
    "step_started",
    "step_failed",
    "step_finished",
    "heartbeat_timeout",
    "stream_written",
    "stream_closed",
    "committed",
    "journal_failed",
)


@attrs.frozen
class Hooks:
    """The overridden hooks of some instruments, each a callable or ``None``."""

    run_started: Callable[..., None] | None = None
    run_finished: Callable[..., None] | None = None
    run_stopped: Callable[..., None] | None = None
    step_started: Callable[..., None] | None = None
    step_failed: Callable[..., None] | None = None
    step_finished: Callable[..., None] | None = None
    heartbeat_timeout: Callable[..., None] | None = None
    stream_written: Callable[..., None] | None = None
    stream_closed: Callable[..., None] | None = None
    committed: Callable[..., None] | None = None
    journal_failed: Callable[..., None] | None = None


NO_HOOKS = Hooks()


def hooks_of(*instruments: Instrument | None) -> Hooks:
    """The hooks ``instruments`` override (``None`` entries skipped), each guarded so that
    one that raises only logs, and fanned out when several override the same hook.

    Raises:
        ValidationError: one of ``instruments`` is not an :class:`~actorflow.abc.Instrument`.
    """
    present = [i for i in instruments if i is not None]
    if not present:
        return NO_HOOKS
    for instrument in present:
        if not isinstance(instrument, Instrument):
            from ._exceptions import ValidationError

            raise ValidationError(
                f"instrument={instrument!r} is not an actorflow.abc.Instrument; subclass it "
                "and override the hooks you need"
            )
    found: dict[str, Callable[..., None]] = {}
    for name in HOOK_NAMES:
        calls = [
            _guarded(getattr(instrument, name), name)
            for instrument in present
            if getattr(type(instrument), name) is not getattr(Instrument, name)
        ]
        if len(calls) == 1:
            found[name] = calls[0]
        elif calls:
            found[name] = _fan_out(tuple(calls))
    return Hooks(**found)


def _guarded(hook: Callable[..., None], name: str) -> Callable[..., None]:
    def call(*args: Any, **kwargs: Any) -> None:
        try:
            hook(*args, **kwargs)
        except Exception:
            _log.exception("instrument hook %s failed; the run goes on", name)

    return call


def _fan_out(calls: tuple[Callable[..., None], ...]) -> Callable[..., None]:
    def call(*args: Any, **kwargs: Any) -> None:
        for hook in calls:
            hook(*args, **kwargs)

    return call
