"""Request ids: every request gets one (the client's ``X-Request-ID`` when sane, else a new one),
it is in every log line and backend call of that request, and it goes back in ``X-Request-ID``."""

from __future__ import annotations

import os
import random
import re

from flask import Flask, Response, g, has_request_context, request

__all__ = ["install_request_ids", "request_id", "sanitise_request_id"]

_random = random.Random()  # seeded from os.urandom; re-seeded in a forked child so ids never repeat
os.register_at_fork(after_in_child=_random.seed)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def sanitise_request_id(value: str | None) -> str:
    """The inbound ``X-Request-ID`` if it is sane (<=128 of ``[A-Za-z0-9._:-]``), else a new id."""
    if value and _REQUEST_ID.fullmatch(value):
        return value
    # Not a secret, just unique: 128 random bits without uuid4's os.urandom system call.
    return f"{_random.getrandbits(128):032x}"


def request_id() -> str | None:
    """This request's id (None outside a request)."""
    return g.get("request_id") if has_request_context() else None


def install_request_ids(app: Flask) -> None:
    """Give every request its id first (before any other hook may answer it)."""

    def assign() -> None:
        if "request_id" not in g:
            g.request_id = sanitise_request_id(request.headers.get("X-Request-ID"))

    def header(response: Response) -> Response:
        assign()  # a request answered before the hooks ran still gets an id
        response.headers["X-Request-ID"] = g.request_id
        return response

    app.before_request(assign)
    app.after_request(header)
