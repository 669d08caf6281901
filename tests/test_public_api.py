"""The public surface: what `import actorflow` offers, and that it is documented."""

from __future__ import annotations

import inspect

import actorflow as af


def test_all_is_a_sorted_tuple_of_existing_names() -> None:
    assert isinstance(af.__all__, tuple)
    assert len(set(af.__all__)) == len(af.__all__)
    for name in af.__all__:
        assert hasattr(af, name), name


def test_every_public_name_has_a_docstring() -> None:
    for name in af.__all__:
        obj = getattr(af, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), name


def test_spec_names_exist() -> None:
    for name in (
        "workflow", "step", "Runtime", "RunHandle", "StepContext", "WorkflowContext",
        "Backoff", "Journal", "MemoryJournal", "SQLiteJournal", "RunStatus", "RunFailed",
        "RunCancelled", "RunNotFound", "StepFailed", "NonDeterminism", "JournalError",
        "JournalLocked", "StreamClosed", "SlowConsumer", "Message", "StreamEntry",
        "ActorflowError",
    ):  # fmt: skip
        assert name in af.__all__, name
