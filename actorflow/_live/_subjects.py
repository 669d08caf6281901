"""Subjects and subject patterns for live streams, with NATS semantics.

A *subject* names where a live message is published: ``stream.<run_id>.<step_id>``.
It is a sequence of tokens joined by ``.``; every token is non-empty, contains
no whitespace, no ``.`` and none of the wildcard characters ``*`` and ``>``.
The layout is written in one place here: :func:`stream_subject` (a step's
subject) and :func:`run_pattern` (a pattern over one run's steps) both build
on it, so no other module should format a subject or a run's pattern itself.

A *pattern* is what a subscription listens to. It is a subject in which a
whole token may be a wildcard:

- ``*`` matches exactly one token (``stream.*.main`` matches ``stream.r1.main``);
- ``>`` matches one or more trailing tokens and may only be the last token
  (``stream.r1.>`` matches ``stream.r1.main`` and ``stream.r1.a.b``, not
  ``stream.r1``).

Publishing is the hot path, so matching many subscriptions goes through a
:class:`SubjectIndex`: a token trie that answers "which subscriptions match
this subject" in time proportional to the subject's length, and carries a
``version`` that changes whenever a subscription is added or removed, so a
publisher can cache its answer and recompute it only after a change.
"""

from __future__ import annotations

import re
from typing import Generic, TypeVar

import attrs

from .._exceptions import ValidationError

__all__ = (
    "SubjectIndex",
    "run_pattern",
    "stream_subject",
    "subject_matches",
    "validate_pattern",
    "validate_subject",
)

_T = TypeVar("_T")

# A literal token: anything but whitespace, the separator and the wildcards.
_TOKEN = r"[^\s.*>]+"
_SUBJECT_RE = re.compile(rf"{_TOKEN}(?:\.{_TOKEN})*")
_PATTERN_RE = re.compile(rf"(?:{_TOKEN}|\*)(?:\.(?:{_TOKEN}|\*))*(?:\.>)?|>")
_WHITESPACE_RE = re.compile(r"\s")

_ALLOWED = "tokens separated by '.', each non-empty, without whitespace, '.', '*' or '>'"


def _explain(text: str, what: str, *, wildcards: bool) -> str:
    """Say precisely why ``text`` is not a valid subject (or pattern)."""
    if not text:
        return f"empty {what}"
    if _WHITESPACE_RE.search(text):
        return f"{what} {text!r} contains whitespace"
    tokens = text.split(".")
    for i, token in enumerate(tokens):
        if not token:
            return f"{what} {text!r} has an empty token (leading, trailing or doubled '.')"
        if token in ("*", ">"):
            if not wildcards:
                return (
                    f"{what} {text!r} contains the wildcard {token!r}; "
                    "wildcards are only allowed in subscription patterns"
                )
            if token == ">" and i != len(tokens) - 1:
                return f"{what} {text!r} has '>' before its last token; '>' must be last"
        elif "*" in token or ">" in token:
            return (
                f"{what} {text!r} has {token!r}: '*' and '>' must be whole tokens"
                if wildcards
                else f"{what} {text!r} has {token!r}: '*' and '>' are not allowed in subjects"
            )
    return f"invalid {what} {text!r}"  # pragma: no cover - the regex and the walk agree


def validate_subject(subject: str) -> str:
    """Check that ``subject`` is a valid subject (no wildcards) and return it.

    Args:
        subject: the subject, e.g. ``"stream.run-1.main"``.

    Returns:
        ``subject`` unchanged.

    Raises:
        ValidationError: ``subject`` is not a str, is empty, has an empty token,
            contains whitespace, or contains ``*`` or ``>``.
    """
    if not isinstance(subject, str):
        raise ValidationError(f"a subject must be a str, not {type(subject).__name__}")
    if _SUBJECT_RE.fullmatch(subject) is None:
        raise ValidationError(
            f"{_explain(subject, 'subject', wildcards=False)}; a subject is {_ALLOWED}"
        )
    return subject


def validate_pattern(pattern: str) -> str:
    """Check that ``pattern`` is a valid subscription pattern and return it.

    Args:
        pattern: the pattern, e.g. ``"stream.*.main"`` or ``"stream.run-1.>"``.

    Returns:
        ``pattern`` unchanged.

    Raises:
        ValidationError: ``pattern`` is not a str, is empty, has an empty token,
            contains whitespace, has ``*`` or ``>`` inside a token, or has
            ``>`` anywhere but as its last token.
    """
    if not isinstance(pattern, str):
        raise ValidationError(f"a pattern must be a str, not {type(pattern).__name__}")
    if _PATTERN_RE.fullmatch(pattern) is None:
        raise ValidationError(
            f"{_explain(pattern, 'pattern', wildcards=True)}; a pattern is {_ALLOWED}, "
            "where a whole token may be '*' (one token) or, last, '>' (one or more tokens)"
        )
    return pattern


def _layout(run_token: str, step_token: str) -> str:
    """The one place that knows how a run and a step make a subject: ``stream.<run>.<step>``."""
    return f"stream.{run_token}.{step_token}"


def _check_token(name: str, value: str) -> None:
    if not isinstance(value, str) or _SUBJECT_RE.fullmatch(value) is None or "." in value:
        raise ValidationError(
            f"{name} {value!r} cannot be a subject token: use a non-empty id without "
            "whitespace, '.', '*' or '>'"
        )


def stream_subject(run_id: str, step_id: str) -> str:
    """Return the live-stream subject ``stream.<run_id>.<step_id>``.

    Args:
        run_id: the run's id; must be a single token (no ``.``).
        step_id: the step's id within the run; must be a single token.

    Raises:
        ValidationError: the resulting subject is not valid (for instance the
            run id contains a ``.`` or whitespace).
    """
    _check_token("run id", run_id)
    _check_token("step id", step_id)
    return _layout(run_id, step_id)


def run_pattern(run_id: str, step: str | None = None) -> str:
    """Return the pattern of one run's live streams: ``stream.<run_id>.<step>``.

    Args:
        run_id: the run's id; must be a single token (no ``.``).
        step: a step id, or a pattern relative to the run (``"*"``,
            ``"generate"``, ``"a.>"``); ``None`` means every step (``">"``).

    Raises:
        ValidationError: ``run_id`` is not a single token, or the resulting
            pattern is not valid.
    """
    _check_token("run id", run_id)
    return validate_pattern(_layout(run_id, ">" if step is None else step))


def _match_tokens(pattern: list[str], subject: list[str]) -> bool:
    if len(pattern) > len(subject):
        return False
    for i, token in enumerate(pattern):
        if token == ">":
            return True  # at least one subject token remains here: len(pattern) <= len(subject)
        if token != "*" and token != subject[i]:
            return False
    return len(pattern) == len(subject)


def subject_matches(pattern: str, subject: str) -> bool:
    """Tell whether ``subject`` matches ``pattern`` (NATS semantics).

    Args:
        pattern: a subscription pattern (see :func:`validate_pattern`).
        subject: a subject (see :func:`validate_subject`).

    Returns:
        ``True`` if every token of ``subject`` is matched: literal tokens by
        equal tokens, ``*`` by any one token, a final ``>`` by one or more.

    Raises:
        ValidationError: ``pattern`` or ``subject`` is invalid.
    """
    validate_pattern(pattern)
    validate_subject(subject)
    return _match_tokens(pattern.split("."), subject.split("."))


@attrs.define(eq=False)
class _Node(Generic[_T]):
    """One level of the trie: children by token (``*`` and ``>`` included)."""

    children: dict[str, _Node[_T]] = attrs.field(factory=dict)
    # Items whose pattern ends at this node, in insertion order.
    items: dict[_T, None] = attrs.field(factory=dict)


@attrs.define(eq=False)
class SubjectIndex(Generic[_T]):
    """A token trie from patterns to items (subscriptions), for fast matching.

    ``version`` changes on every :meth:`add` and :meth:`remove`: a publisher
    caches ``match(subject)`` together with the version and recomputes only
    when the version moved, so publishing does no matching in the steady state.
    Items are compared by hash and equality (identity for ``eq=False`` classes).
    """

    _root: _Node[_T] = attrs.field(factory=_Node, init=False)
    _count: int = attrs.field(default=0, init=False)
    version: int = attrs.field(default=0, init=False)

    def __len__(self) -> int:
        return self._count

    def add(self, pattern: str, item: _T) -> None:
        """Register ``item`` under ``pattern``.

        Args:
            pattern: a valid pattern (see :func:`validate_pattern`).
            item: the item :meth:`match` returns for matching subjects.

        Raises:
            ValidationError: ``pattern`` is invalid.
        """
        validate_pattern(pattern)
        node = self._root
        for token in pattern.split("."):
            child = node.children.get(token)
            if child is None:
                child = node.children[token] = _Node()
            node = child
        if item not in node.items:
            node.items[item] = None
            self._count += 1
        self.version += 1

    def remove(self, pattern: str, item: _T) -> None:
        """Unregister ``item`` from ``pattern``; nothing happens if it is not there.

        Args:
            pattern: the pattern ``item`` was added with.
            item: the item to remove.
        """
        path: list[tuple[_Node[_T], str]] = []
        node = self._root
        for token in pattern.split("."):
            child = node.children.get(token)
            if child is None:
                return
            path.append((node, token))
            node = child
        if item not in node.items:
            return
        del node.items[item]
        self._count -= 1
        self.version += 1
        # Prune the branch that became empty, so churn does not grow the trie.
        for parent, token in reversed(path):
            child = parent.children[token]
            if child.items or child.children:
                break
            del parent.children[token]

    def match(self, subject: str) -> list[_T]:
        """Return the items whose pattern matches ``subject``, each once.

        Args:
            subject: a valid subject (not re-validated: this is the hot path's
                slow branch, and publishers validate their subject once).
        """
        out: list[_T] = []
        self._collect(self._root, subject.split("."), 0, out)
        return out

    def match_all(self) -> list[_T]:
        """Return every item in the index, whatever its pattern."""
        out: list[_T] = []
        stack = [self._root]
        while stack:
            node = stack.pop()
            out.extend(node.items)
            stack.extend(node.children.values())
        return out

    def _collect(self, node: _Node[_T], tokens: list[str], i: int, out: list[_T]) -> None:
        if i == len(tokens):
            out.extend(node.items)
            return
        children = node.children
        tail = children.get(">")
        if tail is not None:
            out.extend(tail.items)
        child = children.get(tokens[i])
        if child is not None:
            self._collect(child, tokens, i + 1, out)
        star = children.get("*")
        if star is not None:
            self._collect(star, tokens, i + 1, out)
