"""The surface of actorflow.testing: a sorted tuple __all__, every name there and documented."""

from __future__ import annotations

import inspect

import actorflow.testing as aft
from actorflow.testing import pytest_plugin


def test_all_is_a_sorted_tuple_of_documented_names() -> None:
    for module in (aft, pytest_plugin):
        assert isinstance(module.__all__, tuple)
        assert list(module.__all__) == sorted(module.__all__)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert inspect.getdoc(obj), name


def test_public_exceptions_derive_from_actorflow_error() -> None:
    import actorflow as af

    for exc in (aft.CheckFailed, aft.Deadlock, aft.InjectedFault):
        assert issubclass(exc, af.ActorflowError)
    assert issubclass(aft.CheckFailed, AssertionError)
    # A crash is a signal, like the SIGKILL it stands for, not an error to handle.
    assert not issubclass(aft.SimulatedCrash, Exception)
