"""A non-streamed JSON answer that survives a router's first-byte deadline.

Heroku's router gives up on a request without a first byte after 30 s (H12) and on an idle one
after 55 s (H15); a long non-streamed generation can take longer. JSON allows leading whitespace
(the official clients parse it), so a slow answer commits to 200 and sends a space now and then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from flask import Response
from gevent import Greenlet, spawn

from ..error_bodies import ollama_error
from ..errors import BridgeError
from ..ndjson import json_bytes

__all__ = ["patient_json"]

_Outcome = tuple[bytes | None, Exception | None]


def patient_json(answer: Callable[[], bytes], *, first_byte_s: float,
                 wrap: Callable[[Iterator[bytes]], Iterator[bytes]],
                 failed: Callable[[str], None]) -> Response:
    """Run ``answer`` (the backend call; returns the JSON body).

    With ``first_byte_s`` 0 it simply runs. Otherwise it runs in a greenlet: an answer (or error)
    within ``first_byte_s`` is sent as usual, with its real status. A slower one gets a space at
    once and every ``first_byte_s`` after until the JSON is ready, so the router keeps the request
    and a client that left is noticed at the next space (the backend call is stopped then). An
    error after that point can only be the body ``{"error": "..."}`` (``failed(outcome)`` notes
    it). ``wrap`` measures the streamed body (the request's observation).
    """
    if first_byte_s <= 0:
        return Response(answer(), mimetype="application/json")
    job: Greenlet = spawn(_outcome_of, answer)
    job.join(first_byte_s)
    if job.ready():
        return Response(_result(job.get()), mimetype="application/json")  # errors keep their status

    def body() -> Iterator[bytes]:
        try:
            yield b" "  # status line, headers and a first byte, now
            while not job.ready():
                job.join(first_byte_s)
                if not job.ready():
                    yield b" "
            try:
                yield _result(job.get())
            except BridgeError as exc:
                failed(exc.outcome)
                yield json_bytes(ollama_error(exc.message))
        finally:
            if not job.ready():  # the client left: stop the backend call too
                job.kill(block=False)

    return Response(wrap(body()), mimetype="application/json", headers={"X-Accel-Buffering": "no"})


def _outcome_of(answer: Callable[[], bytes]) -> _Outcome:
    # Returned, not raised: gevent prints a traceback for every exception a greenlet raises.
    try:
        return answer(), None
    except Exception as exc:  # noqa: BLE001 - handed back to the request's greenlet as is
        return None, exc


def _result(outcome: _Outcome) -> bytes:
    value, error = outcome
    if error is not None:
        raise error
    assert value is not None
    return value
