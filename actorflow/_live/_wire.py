"""What a live stream looks like on NATS: subjects, headers, payload encoding.

This is the contract a reader in any language relies on (the README's "Live
streams across processes (NATS)" section says the same):

- A step's ``put_stream(data)`` is published on ``stream.<run_id>.<step_id>``
  (:func:`~actorflow._live._subjects.stream_subject`; ``main`` for the
  workflow body).
- Headers: ``Actorflow-Seq`` (the message's ``seq``: 1, 2, 3, ... per step),
  ``Actorflow-Attempt`` (the publishing step's attempt, from 1; not on the
  workflow body's messages),
  ``Actorflow-Encoding`` (how the payload is encoded) and ``Actorflow-Origin``
  (the publishing broker: ``seq`` counts per origin, so a run resumed by
  another process starts again at 1 under a new origin).
- Payload, by ``Actorflow-Encoding``: ``bytes`` (the published bytes as
  they are), ``utf-8`` (a published ``str``), ``msgpack`` (anything else,
  encoded by msgspec: dicts, lists, numbers, msgspec Structs, dataclasses,
  ...).
- When a run ends, a message on ``actorflow.run_ended.<run_id>`` whose
  ``msgpack`` payload is ``{"seqs": {step_id: last_seq, ...}}``: the last
  ``seq`` each step published through that origin, so a reader can count the
  messages it missed at the very end.
"""

from __future__ import annotations

from typing import Final

import msgspec

__all__ = (
    "ATTEMPT",
    "ENCODING",
    "ORIGIN",
    "RUN_ENDED_PATTERN",
    "SEQ",
    "decode_payload",
    "encode_payload",
    "run_ended_subject",
)

SEQ: Final = "Actorflow-Seq"
ATTEMPT: Final = "Actorflow-Attempt"
ENCODING: Final = "Actorflow-Encoding"
ORIGIN: Final = "Actorflow-Origin"

RUN_ENDED_PREFIX: Final = "actorflow.run_ended."
RUN_ENDED_PATTERN: Final = "actorflow.run_ended.*"

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode


def run_ended_subject(run_id: str) -> str:
    """The subject announcing that run ``run_id`` ended."""
    return RUN_ENDED_PREFIX + run_id


def encode_payload(data: object) -> tuple[bytes, str]:
    """Encode published data for the wire; return the payload and its encoding.

    Raises:
        TypeError: msgspec cannot encode ``data``.
    """
    kind = type(data)
    if kind is bytes:
        return data, "bytes"  # type: ignore[return-value]
    if kind is str:
        return data.encode(), "utf-8"  # type: ignore[attr-defined]
    if isinstance(data, bytearray | memoryview):
        return bytes(data), "bytes"
    return _encode(data), "msgpack"


def decode_payload(payload: bytes, encoding: str | None) -> object:
    """Decode a payload sent with ``encoding`` (see :func:`encode_payload`).

    Raises:
        ValueError: an unknown encoding, or a payload that does not decode.
    """
    if encoding == "msgpack":
        try:
            return _decode(payload)
        except msgspec.DecodeError as exc:
            raise ValueError(str(exc)) from None
    if encoding == "utf-8":
        return payload.decode()
    if encoding == "bytes":
        return payload
    raise ValueError(f"unknown payload encoding {encoding!r}")
