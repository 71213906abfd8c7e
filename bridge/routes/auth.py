"""Bearer tokens: the one place that reads ``Authorization`` and compares secrets."""

from __future__ import annotations

import hmac

from flask import request

__all__ = ["bearer_token", "inbound_key", "matches", "matching_key"]


def bearer_token() -> bytes | None:
    """The token of this request's ``Authorization: Bearer <token>`` header, or None."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() != "bearer ":
        return None
    return header[7:].strip().encode() or None


def inbound_key() -> bytes | None:
    """The client's key: ``Authorization: Bearer <key>``, else the ``x-api-key`` header that the
    Anthropic SDKs and tools send (both are accepted on every route)."""
    token = bearer_token()
    if token is not None:
        return token
    return request.headers.get("x-api-key", "").strip().encode() or None


def matches(given: bytes | None, *expected: bytes) -> bool:
    """True when ``given`` equals one of ``expected``; every candidate is compared in constant
    time, with no early exit, so timing tells nothing about which keys exist."""
    if given is None:
        return False
    return any([hmac.compare_digest(given, key) for key in expected])


def matching_key(given: bytes | None, *expected: bytes) -> int | None:
    """The index of the key in ``expected`` that ``given`` equals, or None. Like :func:`matches`,
    every candidate is compared in constant time with no early exit."""
    if given is None:
        return None
    found = None
    for index, key in enumerate(expected):
        if hmac.compare_digest(given, key) and found is None:
            found = index
    return found
