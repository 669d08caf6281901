"""The values of a graph: state keys, what nodes see and return, and what a run yields.

Nothing here runs anything; every other module of the graph package builds on
these names.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
import msgspec

from .._exceptions import ValidationError

__all__ = (
    "END",
    "RESULTS_STREAM",
    "Command",
    "ExecutionResult",
    "Key",
    "ListKey",
    "NodeInput",
    "NodeOutput",
    "View",
    "command_output",
    "key_name",
)

END = "__end__"
"""The target that ends a branch: ``Command().to(af.END)``; also the node of the final result."""

RESULTS_STREAM = "graph:results"
"""The durable stream a graph run writes its results to, and ``stream()`` reads."""


# -- keys and reducers -----------------------------------------------------------------


def _replace(current: Any, update: Any) -> Any:
    return update


def _append(current: Any, update: Any) -> Any:
    return [*current, *update]


@attrs.frozen
class Key:
    """A state key: its name, its default, and the reducer that merges updates into it.

    ``af.Key("status", default="")`` replaces (two nodes setting it in one
    superstep is a :class:`~actorflow.GraphError`). Pass ``reducer=fn`` to
    merge instead: ``fn(current, update) -> new``, called once per update, in
    node-name order, so it need not be commutative to be deterministic.

    Attributes:
        name: the key's name in the state dict.
        default: its value before any update (deep-copied per run).
        reducer: ``fn(current, update)``, or None to replace.
    """

    name: str
    default: Any = None
    reducer: Callable[[Any, Any], Any] | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValidationError(f"a state key needs a non-empty str name, not {self.name!r}")
        if self.reducer is not None and not callable(self.reducer):
            raise ValidationError(f"reducer of key {self.name!r} must be callable")

    @property
    def replaces(self) -> bool:
        """True when an update replaces the value (no reducer)."""
        return self.reducer is None

    @property
    def appends(self) -> bool:
        """True for a :class:`ListKey`."""
        return False

    def initial(self) -> Any:
        """A fresh copy of the default, for a new run."""
        return copy.deepcopy(self.default)

    def reduce(self, current: Any, update: Any) -> Any:
        """Merge one update into the current value."""
        return (self.reducer or _replace)(current, update)


@attrs.frozen
class ListKey(Key):
    """A list-valued key whose updates append: ``Command().append(messages, m1, m2)``.

    Its default is ``[]``; ``Command().set(key, [a, b])`` appends ``a`` and
    ``b`` too, as LangGraph's ``operator.add`` channels do.
    """

    def __init__(self, name: str) -> None:
        self.__attrs_init__(name, None, reducer=_append)  # type: ignore[attr-defined]

    @property
    def replaces(self) -> bool:
        """Always False: list keys append."""
        return False

    @property
    def appends(self) -> bool:
        """Always True."""
        return True

    def initial(self) -> Any:
        """A new empty list."""
        return []


# -- what nodes see and return ----------------------------------------------------------


def key_name(key: Key | str) -> str:
    """The name of ``key``, given as an :class:`Key` or its name."""
    if isinstance(key, Key):
        return key.name
    if isinstance(key, str):
        return key
    raise ValidationError(f"a state key is an af.Key or its name, not {key!r}")


class Command:
    """What a node returns: state updates and where to go next.

    ``af.Command().set(status, "done").append(messages, reply).to("tools")``.
    Each builder method returns the command itself.
    """

    __slots__ = ("_appended", "_targets", "_updates")

    def __init__(self) -> None:
        self._updates: dict[str, Any] = {}
        self._appended: set[str] = set()
        self._targets: list[str] = []

    def __repr__(self) -> str:
        return f"Command(updates={self._updates!r}, to={self._targets!r})"

    @property
    def updates(self) -> dict[str, Any]:
        """The updates, key name → value (appended values as a list)."""
        return dict(self._updates)

    @property
    def targets(self) -> list[str]:
        """The chosen targets, in the order given."""
        return list(self._targets)

    def set(self, key: Key | str, value: Any) -> Command:
        """Update ``key`` with ``value`` (merged by the key's reducer at the barrier).

        Setting a key twice in one command keeps the later value.
        """
        name = key_name(key)
        self._updates[name] = value
        self._appended.discard(name)
        return self

    def append(self, key: Key | str, *values: Any) -> Command:
        """Append ``values`` to the :class:`ListKey` ``key``."""
        name = key_name(key)
        if name in self._appended:
            self._updates[name].extend(values)
        else:
            self._updates[name] = list(values)
            self._appended.add(name)
        return self

    def to(self, *targets: str) -> Command:
        """Route to ``targets`` (node names or ``af.END``) in the next superstep."""
        for target in targets:
            if not isinstance(target, str):
                raise ValidationError(f"Command.to() takes node names, not {target!r}")
            if target not in self._targets:
                self._targets.append(target)
        return self


class View(Mapping[str, Any]):
    """The state as it was at the start of the superstep, read-only: ``view[messages]``.

    Index it with an :class:`Key` or a key name. The values are shared with the
    run: do not mutate them; return updates in a :class:`Command` instead.

    Attributes:
        superstep: the number of the superstep this view belongs to, from 0.
    """

    __slots__ = ("_state", "superstep")

    def __init__(self, state: Mapping[str, Any], superstep: int) -> None:
        self._state = state
        self.superstep = superstep

    def __repr__(self) -> str:
        return f"View(superstep={self.superstep}, state={dict(self._state)!r})"

    def __getitem__(self, key: Key | str) -> Any:
        name = key_name(key)
        try:
            return self._state[name]
        except KeyError:
            raise KeyError(
                f"the graph has no state key {name!r}; declare it in Graph(keys=[...])"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._state)

    def __len__(self) -> int:
        return len(self._state)


# -- what a node's step records ---------------------------------------------------------


class NodeInput(msgspec.Struct, frozen=True):
    """The input of a node's step: the state at the superstep's start, and replies so far."""

    state: dict[str, Any]
    superstep: int
    replies: list[Any] = []
    skip_emits: int = 0


class NodeOutput(msgspec.Struct, frozen=True):
    """The recorded output of a node's step: its command, or the topic it waits on."""

    updates: dict[str, Any] = {}
    appended: list[str] = []
    targets: list[str] = []
    wait: str | None = None
    emitted: int = 0


def command_output(command: Command, emitted: int) -> NodeOutput:
    """The output a node's step records for ``command`` (after ``emitted`` emits)."""
    return NodeOutput(
        updates=command._updates,
        appended=sorted(command._appended),
        targets=command._targets,
        emitted=emitted,
    )


# -- what a run yields ------------------------------------------------------------------


@attrs.frozen
class ExecutionResult:
    """One item of :meth:`CompiledGraph.stream`.

    Attributes:
        node: the node that finished or emitted, or ``af.END`` for the final result.
        updates: the node's state updates (key → value; appends as a list) when
            it finished, the emitted value for an emit, ``{}`` for ``END``.
        output: the final state for ``END``; None otherwise.
        superstep: the superstep it belongs to (for ``END``: how many ran).
    """

    node: str
    updates: Any
    output: Any
    superstep: int
