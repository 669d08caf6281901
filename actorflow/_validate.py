"""Checks of names a user passes: stream keys, topics, event keys, run ids."""

from __future__ import annotations

import re

from ._exceptions import ValidationError

__all__ = ("validate_key", "validate_run_id")

_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def validate_key(key: object, what: str = "stream key") -> str:
    """Return ``key`` if it is a valid stream key, topic or event key.

    Raises:
        ValidationError: it does not match ``[A-Za-z0-9_.:-]{1,128}``.
    """
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValidationError(
            f"invalid {what} {key!r}: use 1 to 128 letters, digits, '_', '.', ':' or '-'"
        )
    return key


def validate_run_id(run_id: object) -> str:
    """Return ``run_id`` if it is a valid run id.

    Raises:
        ValidationError: it does not match ``[A-Za-z0-9_-]{1,128}``.
    """
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise ValidationError(
            f"invalid run_id {run_id!r}: use 1 to 128 letters, digits, '_' or '-'"
        )
    return run_id
