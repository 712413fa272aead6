"""Decoding an engine's snapshot body: the checks every format-and-version snapshot shares.

The matching engine and the whole-chain Engine each save their state as a msgspec Struct
whose first fields are ``format`` and ``version``, msgpack-encoded. Restoring must refuse
bytes that are not such a body, and a body of another format or version, with a message
that names what was found and what was expected; ``decode_body`` is that check, once.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

Body = TypeVar("Body", bound=msgspec.Struct)


def decode_body(data: bytes, body_type: type[Body], fmt: str, version: int, what: str) -> Body:
    """``data`` decoded as ``body_type``, whose ``format`` / ``version`` must be ``fmt`` / ``version``.

    ``what`` names the snapshot for a person ("a matching-engine"). Raises ValueError.
    """
    try:
        body = msgspec.msgpack.decode(data, type=body_type)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not {what} snapshot: {exc}") from exc
    found_fmt, found_version = body.format, body.version  # type: ignore[attr-defined]
    if found_fmt != fmt or found_version != version:
        raise ValueError(
            f"snapshot format {found_fmt!r} v{found_version} is not supported: expected "
            f"{fmt!r} v{version}"
        )
    return body
