"""Subjects and patterns: validation, NATS matching, and the subscription index."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actorflow import ValidationError
from actorflow._live._subjects import (
    SubjectIndex,
    run_pattern,
    stream_subject,
    subject_matches,
    validate_pattern,
    validate_subject,
)

tokens = st.sampled_from(["a", "b", "c", "run-1", "main", "x_y"])
subjects = st.lists(tokens, min_size=1, max_size=5).map(".".join)


@st.composite
def patterns(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.one_of(tokens, st.just("*")), min_size=0, max_size=5))
    if not parts or draw(st.booleans()):
        parts.append(">")
    return ".".join(parts)


def reference_matches(pattern: str, subject: str) -> bool:
    """NATS matching as a regex: '*' is one token, a final '>' one or more."""
    regex = []
    for token in pattern.split("."):
        if token == "*":
            regex.append(r"[^.]+")
        elif token == ">":
            regex.append(r"[^.]+(?:\.[^.]+)*")
        else:
            regex.append(re.escape(token))
    return re.fullmatch(r"\.".join(regex), subject) is not None


def reference_valid(text: str, *, pattern: bool) -> bool:
    if not text or any(c.isspace() for c in text):
        return False
    parts = text.split(".")
    for i, token in enumerate(parts):
        if not token:
            return False
        if pattern and token == "*":
            continue
        if pattern and token == ">" and i == len(parts) - 1:
            continue
        if "*" in token or ">" in token:
            return False
    return True


@given(patterns(), subjects)
def test_matches_agree_with_the_reference_model(pattern: str, subject: str) -> None:
    assert subject_matches(pattern, subject) == reference_matches(pattern, subject)


@given(st.text(alphabet="ab.*> \t\n", max_size=8))
def test_validation_agrees_with_the_reference_model(text: str) -> None:
    for validate, is_pattern in ((validate_subject, False), (validate_pattern, True)):
        if reference_valid(text, pattern=is_pattern):
            assert validate(text) == text
        else:
            with pytest.raises(ValidationError):
                validate(text)


@given(
    st.lists(st.tuples(patterns(), st.booleans()), max_size=12),
    st.lists(subjects, min_size=1, max_size=5),
)
def test_index_agrees_with_subject_matches(ops: list[tuple[str, bool]], probe: list[str]) -> None:
    index: SubjectIndex[int] = SubjectIndex()
    live: dict[int, str] = {}
    for item, (pattern, remove_earlier) in enumerate(ops):
        version = index.version
        if remove_earlier and live:
            victim = min(live)
            index.remove(live.pop(victim), victim)
        else:
            index.add(pattern, item)
            live[item] = pattern
        assert index.version != version
        assert len(index) == len(live)
    for subject in probe:
        expected = sorted(i for i, p in live.items() if subject_matches(p, subject))
        assert sorted(index.match(subject)) == expected
    assert sorted(index.match_all()) == sorted(live)
    for item, pattern in list(live.items()):
        index.remove(pattern, item)
    assert len(index) == 0
    assert index.match_all() == []


def test_remove_of_an_unknown_item_changes_nothing() -> None:
    index: SubjectIndex[str] = SubjectIndex()
    index.add("a.>", "x")
    version = index.version
    index.remove("a.>", "y")
    index.remove("b.c", "x")
    assert index.version == version
    assert index.match("a.b") == ["x"]


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("stream.>", "stream.r1.main", True),
        ("stream.>", "stream", False),
        ("stream.*.main", "stream.r1.main", True),
        ("stream.*.main", "stream.r1.other", False),
        ("stream.*", "stream.r1.main", False),
        (">", "a", True),
        ("*", "a.b", False),
        ("a.*.>", "a.b", False),
        ("a.*.>", "a.b.c.d", True),
    ],
)
def test_nats_examples(pattern: str, subject: str, expected: bool) -> None:
    assert subject_matches(pattern, subject) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty subject"),
        ("a..b", "empty token"),
        (".a", "empty token"),
        ("a b", "whitespace"),
        ("a.*", "wildcards are only allowed in subscription patterns"),
        ("a.>", "wildcards are only allowed in subscription patterns"),
        ("a.b*", "not allowed in subjects"),
    ],
)
def test_invalid_subjects_say_why(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)) as info:
        validate_subject(text)
    assert isinstance(info.value, ValueError)
    assert "a subject is tokens separated by '.'" in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty pattern"),
        ("a.>.b", "'>' must be last"),
        ("a.b*", "must be whole tokens"),
        ("a.>x", "must be whole tokens"),
        ("a.", "empty token"),
        ("a.\tb", "whitespace"),
    ],
)
def test_invalid_patterns_say_why(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        validate_pattern(text)


def test_non_strings_are_rejected() -> None:
    with pytest.raises(ValidationError, match="must be a str"):
        validate_subject(3)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="must be a str"):
        validate_pattern(None)  # type: ignore[arg-type]


def test_stream_subject() -> None:
    assert stream_subject("run-1", "main") == "stream.run-1.main"
    with pytest.raises(ValidationError, match=r"run id 'a\.b'"):
        stream_subject("a.b", "main")
    with pytest.raises(ValidationError, match="step id '\\*'"):
        stream_subject("r", "*")


def test_run_pattern_matches_exactly_the_subjects_of_its_run() -> None:
    assert run_pattern("run-1") == "stream.run-1.>"
    assert run_pattern("run-1", "main") == "stream.run-1.main"
    assert run_pattern("run-1", "*") == "stream.run-1.*"
    for step in (None, "main", "*"):
        pattern = run_pattern("run-1", step)
        assert subject_matches(pattern, stream_subject("run-1", "main"))
        assert not subject_matches(pattern, stream_subject("run-2", "main"))
    with pytest.raises(ValidationError, match=r"run id 'a\.b'"):
        run_pattern("a.b")
    with pytest.raises(ValidationError, match=r"'>' before its last token"):
        run_pattern("r", ">.main")
