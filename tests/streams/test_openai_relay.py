"""The OpenAI SSE relay against a fake backend body: bytes unchanged, usage and first token noted."""

from __future__ import annotations

import json

from bridge.errors import UpstreamTimeout
from bridge.streams.openai_relay import openai_relay, usage_of
from tests.streams.fakes import FakeBody, FakeReport, chunk, sse


def test_bytes_are_relayed_unchanged_and_measured():
    reads = [chunk("a"), chunk("b") + chunk(finish="stop", usage={"prompt_tokens": 4, "completion_tokens": 2}),
             sse("[DONE]")]
    body = FakeBody(reads)
    report = FakeReport()
    writes = list(openai_relay(body, report))
    assert writes == [b"", *reads]
    assert report.first_tokens == 1 and report.tokens == (4, 2)
    assert body.released == 1 and body.closed == 0


def test_failure_is_one_openai_error_event():
    body = FakeBody([chunk("a")], fail=UpstreamTimeout("backend stalled mid-stream"))
    report = FakeReport()
    writes = list(openai_relay(body, report))
    assert writes[-1].startswith(b"data: ")
    err = json.loads(writes[-1][len(b"data: "):])["error"]
    assert err["message"] == "backend stalled mid-stream" and set(err) == {"message", "type", "param", "code"}
    assert report.outcome == "timeout"


def test_usage_of_keeps_what_is_absent():
    assert usage_of({"usage": {"prompt_tokens": 3}}, (None, 7)) == (3, 7)
    assert usage_of({"no": "usage"}, (1, 2)) == (1, 2)
    assert usage_of("not a dict") == (None, None)
