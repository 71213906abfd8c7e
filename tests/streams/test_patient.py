"""The patient JSON answer: real status when quick, spaces then JSON when slow."""

from __future__ import annotations

import gevent
import pytest

from bridge.errors import UpstreamHTTPError, UpstreamTimeout
from bridge.streams.patient import patient_json


def passthrough(body):
    return body


def test_no_deadline_answers_directly():
    resp = patient_json(lambda: b'{"a":1}', first_byte_s=0, wrap=passthrough, failed=lambda o: None)
    assert resp.status_code == 200 and resp.get_data() == b'{"a":1}'


def test_quick_error_keeps_its_status():
    def answer() -> bytes:
        raise UpstreamHTTPError(503, "busy")

    with pytest.raises(UpstreamHTTPError):
        patient_json(answer, first_byte_s=0.5, wrap=passthrough, failed=lambda o: None)


def test_slow_answer_sends_spaces_first():
    def answer() -> bytes:
        gevent.sleep(0.25)
        return b'{"done":true}'

    resp = patient_json(answer, first_byte_s=0.1, wrap=passthrough, failed=lambda o: None)
    parts = list(resp.response)
    assert parts[0] == b" " and parts[-1] == b'{"done":true}' and set(parts[:-1]) == {b" "}
    assert resp.headers["X-Accel-Buffering"] == "no"


def test_slow_error_is_an_error_body_and_noted():
    noted = []

    def answer() -> bytes:
        gevent.sleep(0.2)
        raise UpstreamTimeout("backend timed out")

    resp = patient_json(answer, first_byte_s=0.05, wrap=passthrough, failed=noted.append)
    assert list(resp.response)[-1] == b'{"error":"backend timed out"}' and noted == ["timeout"]


def test_client_gone_stops_the_backend_call():
    finished = []

    def answer() -> bytes:
        gevent.sleep(5)
        finished.append(True)
        return b"{}"

    resp = patient_json(answer, first_byte_s=0.05, wrap=passthrough, failed=lambda o: None)
    body = iter(resp.response)
    assert next(body) == b" "
    body.close()  # the server closes the body when the client left
    gevent.sleep(0.05)
    assert finished == []
