"""Encoding user values: msgpack via msgspec, never pickle."""

from __future__ import annotations

from typing import Any

import msgspec

from ._exceptions import EncodeError

__all__ = ("decode_value", "encode_value")

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder()
_typed_decoders: dict[Any, msgspec.msgpack.Decoder[Any]] = {}


def encode_value(value: object, what: str) -> bytes:
    """Encode ``value`` as msgpack.

    Args:
        value: the user's value.
        what: what the value is, for the error message ("the input of step 'fetch'").

    Raises:
        EncodeError: msgspec cannot encode the value; nothing was written.
    """
    try:
        return _encoder.encode(value)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise EncodeError(
            f"{what} cannot be encoded ({exc}); use msgspec-encodable values: "
            "str, int, float, bool, None, bytes, list, tuple, dict, a msgspec Struct, "
            "a dataclass or an attrs class"
        ) from None


def decode_value(data: bytes, type_: Any = Any) -> Any:
    """Decode msgpack ``data``, as ``type_`` when a type is known (a step's return annotation)."""
    if type_ is Any:
        return _decoder.decode(data)
    try:
        decoder = _typed_decoders[type_]
    except KeyError:
        decoder = _typed_decoders[type_] = msgspec.msgpack.Decoder(type_)
    except TypeError:  # unhashable annotation
        return msgspec.msgpack.Decoder(type_).decode(data)
    return decoder.decode(data)
