"""``@workflow`` and ``@step``: definitions and the process-wide registry."""

from __future__ import annotations

import inspect
import random
import re
import typing
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, Protocol, TypeVar, overload

import attrs

from ._exceptions import ValidationError, WorkflowNotFound

if typing.TYPE_CHECKING:
    from ._context import StepContext, ThreadStepContext, WorkflowContext

__all__ = (
    "Backoff",
    "Step",
    "StepDecorator",
    "Workflow",
    "lookup_workflow",
    "register_workflow",
    "step",
    "validate_name",
    "workflow",
)

I = TypeVar("I")  # noqa: E741 - the input type, as in the signatures users read
O = TypeVar("O")  # noqa: E741
# A step or workflow taking a base class accepts a subclass, and one returning a
# subclass may stand where a base class is returned.
I_contra = TypeVar("I_contra", contravariant=True)
O_co = TypeVar("O_co", covariant=True)

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")

_workflows: dict[str, Workflow[Any, Any]] = {}
_steps: dict[str, Step[Any, Any]] = {}


def validate_name(name: object, what: str) -> str:
    """Return ``name`` if it is a valid workflow or step name.

    Raises:
        ValidationError: it does not match ``[A-Za-z0-9_-]{1,64}``.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationError(
            f"invalid {what} name {name!r}: use 1 to 64 letters, digits, '_' or '-' "
            f"(pass name=... to choose one)"
        )
    return name


def _annotation(fn: Callable[..., Any], which: str) -> Any:
    """The type annotated on the input (``which="input"``) or ``"return"`` of ``fn``.

    Recorded values are decoded to it, so a Struct comes back as a Struct
    after recovery too; ``Any`` when unannotated or unresolvable.
    """
    try:
        hints = typing.get_type_hints(fn)
        if which == "input":
            params = list(inspect.signature(fn).parameters)
            which = params[1] if len(params) > 1 else ""
    except Exception:
        return Any
    hint = hints.get(which, Any)
    return Any if hint is None or hint is type(None) else hint


@attrs.frozen
class Backoff:
    """How long to wait before retrying a failed step attempt.

    The n-th retry waits ``min(max, initial * factor ** (n - 1))``, spread by
    ``± jitter`` (a fraction) so that many failing steps do not retry in step.

    Attributes:
        initial: the first delay, in seconds.
        factor: growth per retry.
        max: the longest delay.
        jitter: random spread as a fraction of the delay (0 for none).
    """

    initial: float = 0.1
    factor: float = 2.0
    max: float = 30.0
    jitter: float = 0.1

    def __attrs_post_init__(self) -> None:
        if self.initial < 0 or self.factor < 1 or self.max < 0 or not 0 <= self.jitter <= 1:
            raise ValidationError(
                f"invalid {self!r}: need initial >= 0, factor >= 1, max >= 0 and 0 <= jitter <= 1"
            )

    def delay(self, retry: int) -> float:
        """The delay before retry number ``retry`` (1 for the first retry)."""
        base: float = min(self.max, self.initial * self.factor ** max(0, retry - 1))
        if self.jitter:
            base *= 1 + random.uniform(-self.jitter, self.jitter)
        return max(0.0, base)


@attrs.frozen
class Step(Generic[I_contra, O_co]):
    """A registered step: call it from a workflow body with ``await ctx.step(s, input)``.

    Calling the object directly runs the plain function with no journal,
    retries or timeouts, which is handy in unit tests.

    Attributes:
        fn: the decorated function.
        name: its registered name.
        retries: how many times a failed attempt is retried.
        backoff: delays between attempts.
        timeout: per-attempt time limit in seconds, or None.
        heartbeat_timeout: an attempt that does not call ``ctx.heartbeat()``
            for this long is cancelled and retried; None disables it.
    """

    fn: Callable[..., Any] = attrs.field(repr=False)
    name: str
    retries: int = 0
    backoff: Backoff = Backoff()
    timeout: float | None = None
    heartbeat_timeout: float | None = None
    is_async: bool = attrs.field(default=False, repr=False)
    output_type: Any = attrs.field(default=Any, repr=False)

    def __call__(self, ctx: Any, input: I_contra) -> Any:
        return self.fn(ctx, input)


@attrs.frozen
class Workflow(Generic[I_contra, O_co]):
    """A registered workflow: start it with ``await rt.start(wf, input)``.

    Attributes:
        fn: the decorated function.
        name: its registered name (what the journal records).
    """

    fn: Callable[[WorkflowContext, I_contra], Awaitable[O_co]] = attrs.field(repr=False)
    name: str
    input_type: Any = attrs.field(default=Any, repr=False)
    output_type: Any = attrs.field(default=Any, repr=False)

    def __call__(self, ctx: WorkflowContext, input: I_contra) -> Awaitable[O_co]:
        return self.fn(ctx, input)


def _check_options(
    retries: int, timeout: float | None, heartbeat_timeout: float | None, backoff: object
) -> None:
    if not isinstance(retries, int) or retries < 0:
        raise ValidationError(f"retries must be an int >= 0, not {retries!r}")
    for label, value in (("timeout", timeout), ("heartbeat_timeout", heartbeat_timeout)):
        if value is not None and not value > 0:
            raise ValidationError(f"{label} must be a positive number of seconds or None")
    if not isinstance(backoff, Backoff):
        raise ValidationError(f"backoff must be an af.Backoff, not {backoff!r}")


def _check_signature(fn: Callable[..., Any], what: str) -> None:
    if not callable(fn):
        raise ValidationError(f"@{what} decorates a function, not {fn!r}")
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) != 2 and not any(p.kind is p.VAR_POSITIONAL for p in params):
        raise ValidationError(
            f"{what} {getattr(fn, '__name__', fn)!r} must take exactly (ctx, input); "
            "pass several values as one Struct, dataclass, dict or tuple"
        )


class StepDecorator(Protocol):
    """What ``@af.step(...)`` with options returns: it keeps the step's types."""

    @overload
    def __call__(self, fn: Callable[[StepContext, I], Coroutine[Any, Any, O]], /) -> Step[I, O]: ...
    @overload
    def __call__(self, fn: Callable[[ThreadStepContext, I], O], /) -> Step[I, O]: ...


@overload
def step(fn: Callable[[StepContext, I], Coroutine[Any, Any, O]], /) -> Step[I, O]: ...
@overload
def step(fn: Callable[[ThreadStepContext, I], O], /) -> Step[I, O]: ...
@overload
def step(
    *,
    name: str | None = None,
    retries: int = 0,
    backoff: Backoff = ...,
    timeout: float | None = None,
    heartbeat_timeout: float | None = None,
) -> StepDecorator: ...


def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    retries: int = 0,
    backoff: Backoff = Backoff(),
    timeout: float | None = None,
    heartbeat_timeout: float | None = None,
) -> Step[Any, Any] | StepDecorator:
    """Register a step, bare (``@af.step``) or with options (``@af.step(retries=3)``).

    An ``async def`` step runs in the event loop; a plain ``def`` step runs in
    a worker thread and receives a :class:`~actorflow.ThreadStepContext` whose
    operations block instead of being awaited.

    Args:
        fn: the function, when used bare.
        name: registered name; defaults to the function's ``__name__``.
        retries: how many times a failed attempt is retried (0: never).
        backoff: delays between attempts.
        timeout: per-attempt limit in seconds.
        heartbeat_timeout: cancel and retry an attempt silent for this long.

    Raises:
        ValidationError: bad name, option or signature.
    """
    _check_options(retries, timeout, heartbeat_timeout, backoff)

    def decorate(fn: Callable[..., Any]) -> Step[Any, Any]:
        _check_signature(fn, "step")
        s: Step[Any, Any] = Step(
            fn=fn,
            name=validate_name(name if name is not None else fn.__name__, "step"),
            retries=retries,
            backoff=backoff,
            timeout=timeout,
            heartbeat_timeout=heartbeat_timeout,
            is_async=inspect.iscoroutinefunction(fn),
            output_type=_annotation(fn, "return"),
        )
        _steps[s.name] = s
        return s

    return decorate if fn is None else decorate(fn)


@overload
def workflow(fn: Callable[[WorkflowContext, I], Coroutine[Any, Any, O]], /) -> Workflow[I, O]: ...
@overload
def workflow(
    *, name: str | None = None
) -> Callable[[Callable[[WorkflowContext, I], Coroutine[Any, Any, O]]], Workflow[I, O]]: ...


def workflow(
    fn: Callable[[WorkflowContext, Any], Coroutine[Any, Any, Any]] | None = None,
    /,
    *,
    name: str | None = None,
) -> Workflow[Any, Any] | Callable[[Callable[..., Any]], Workflow[Any, Any]]:
    """Register a workflow, bare (``@af.workflow``) or named (``@af.workflow(name="x")``).

    The body must be an ``async def (ctx, input)`` that is deterministic:
    recovery re-executes it, and every step it already completed returns its
    recorded output instead of running. Registering a name again replaces the
    earlier definition.

    Args:
        fn: the function, when used bare.
        name: registered name; defaults to the function's ``__name__``.

    Raises:
        ValidationError: bad name, signature, or not an ``async def``.
    """

    def decorate(fn: Callable[..., Any]) -> Workflow[Any, Any]:
        _check_signature(fn, "workflow")
        if not inspect.iscoroutinefunction(fn):
            raise ValidationError(
                f"workflow {getattr(fn, '__name__', fn)!r} must be an `async def`; "
                "put blocking work in a plain `def` step"
            )
        wf: Workflow[Any, Any] = Workflow(
            fn=fn,
            name=validate_name(name if name is not None else fn.__name__, "workflow"),
            input_type=_annotation(fn, "input"),
            output_type=_annotation(fn, "return"),
        )
        register_workflow(wf)
        return wf

    return decorate if fn is None else decorate(fn)


def register_workflow(wf: Workflow[Any, Any]) -> None:
    """Register ``wf`` under its name (a later one of the same name replaces it)."""
    _workflows[wf.name] = wf


def lookup_workflow(name: str) -> Workflow[Any, Any]:
    """The workflow registered under ``name``.

    Raises:
        WorkflowNotFound: nothing is registered under that name.
    """
    try:
        return _workflows[name]
    except KeyError:
        raise WorkflowNotFound(
            f"no workflow registered as {name!r}; import the module that defines it "
            "before opening the runtime"
        ) from None


def registered_workflows() -> dict[str, Workflow[Any, Any]]:
    """A copy of the registry of workflows, by name."""
    return dict(_workflows)
