"""The public surface: every public module's ``__all__``, both ways, and its docs.

As anyio's ``tests/test_all_attributes.py``: a name in ``__all__`` exists; a
public name a module defines (or re-exports from actorflow's private modules)
is in ``__all__``; and every public class and function has a docstring.
"""

from __future__ import annotations

import importlib
import inspect
import types

import pytest

import actorflow as af

PUBLIC_MODULES = [
    "actorflow",
    "actorflow.abc",
    "actorflow.records",
    "actorflow.testing",
    "actorflow.web",
]


def _module(name: str) -> types.ModuleType:
    return importlib.import_module(name)


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_a_tuple_of_existing_unique_names(name: str) -> None:
    module = _module(name)
    assert isinstance(module.__all__, tuple), name
    assert len(set(module.__all__)) == len(module.__all__), name
    for attr in module.__all__:
        assert hasattr(module, attr), f"{name}.{attr}"


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_public_actorflow_name_is_in_all(name: str) -> None:
    module = _module(name)
    missing = []
    for attr, value in vars(module).items():
        if attr.startswith("_") or attr in module.__all__:
            continue
        if isinstance(value, types.ModuleType):
            continue  # submodules (actorflow.abc is listed where it is public)
        origin = getattr(value, "__module__", None)
        if isinstance(origin, str) and origin.startswith("actorflow"):
            missing.append(attr)
    assert missing == [], f"{name} defines public names missing from __all__: {missing}"


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_public_name_has_a_docstring(name: str) -> None:
    module = _module(name)
    assert inspect.getdoc(module), name
    for attr in module.__all__:
        obj = getattr(module, attr)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"{name}.{attr}"


def test_spec_names_exist() -> None:
    for name in (
        "workflow", "step", "Runtime", "RunHandle", "StepContext", "WorkflowContext",
        "Backoff", "Journal", "MemoryJournal", "SQLiteJournal", "RunStatus", "RunFailed",
        "RunCancelled", "RunNotFound", "StepFailed", "NonDeterminism", "JournalError",
        "JournalLocked", "StreamClosed", "SlowConsumer", "Message", "StreamEntry",
        "ActorflowError", "abc",
    ):  # fmt: skip
        assert name in af.__all__, name
    for name in ("Journal", "LiveBroker", "LiveSubscription", "Clock", "Instrument"):
        assert name in af.abc.__all__, name


def test_the_journal_protocol_is_the_same_object_everywhere() -> None:
    assert af.Journal is af.abc.Journal
