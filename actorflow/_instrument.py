"""Calling an :class:`~actorflow.abc.Instrument`'s hooks: only those it overrides.

:func:`hooks_of` looks once, when the runtime is made, at which hooks the
instrument overrides, and keeps a callable for each of those and ``None`` for
the rest. A call site then pays one attribute test when no hook is set
(``if hooks.step_started is not None``), which is what "nothing is paid when
none is set" means on the hot paths (stream writes, commits).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import attrs

from .abc import Instrument

__all__ = ("Hooks", "hooks_of")

_log = logging.getLogger("actorflow.instrument")
_HOOKS = (
    "run_started",
    "run_finished",
    "step_started",
    "step_failed",
    "step_finished",
    "stream_written",
    "stream_closed",
    "committed",
)


@attrs.frozen
class Hooks:
    """The overridden hooks of one instrument, each a callable or ``None``."""

    run_started: Callable[..., None] | None = None
    run_finished: Callable[..., None] | None = None
    step_started: Callable[..., None] | None = None
    step_failed: Callable[..., None] | None = None
    step_finished: Callable[..., None] | None = None
    stream_written: Callable[..., None] | None = None
    stream_closed: Callable[..., None] | None = None
    committed: Callable[..., None] | None = None


NO_HOOKS = Hooks()


def hooks_of(instrument: Instrument | None) -> Hooks:
    """The hooks ``instrument`` overrides, guarded so that one that raises only logs.

    Raises:
        TypeError: ``instrument`` is not an :class:`~actorflow.abc.Instrument`.
    """
    if instrument is None:
        return NO_HOOKS
    if not isinstance(instrument, Instrument):
        from ._exceptions import ValidationError

        raise ValidationError(
            f"instrument={instrument!r} is not an actorflow.abc.Instrument; subclass it and "
            "override the hooks you need"
        )
    found: dict[str, Callable[..., None]] = {}
    for name in _HOOKS:
        if getattr(type(instrument), name) is not getattr(Instrument, name):
            found[name] = _guarded(getattr(instrument, name), name)
    return Hooks(**found)


def _guarded(hook: Callable[..., None], name: str) -> Callable[..., None]:
    def call(*args: Any, **kwargs: Any) -> None:
        try:
            hook(*args, **kwargs)
        except Exception:
            _log.exception("instrument hook %s failed; the run goes on", name)

    return call
