"""The Responses API relay against a fake backend body."""

from __future__ import annotations

import json

from bridge.errors import UpstreamProtocolError
from bridge.streams.responses_relay import responses_relay, responses_usage
from tests.streams.fakes import FakeBody, FakeReport


def ev(kind: str, seq: int, **fields) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, 'sequence_number': seq, **fields})}\n\n".encode()


def test_complete_stream_relayed_and_counted():
    done = {"id": "resp_1", "status": "completed", "usage": {"input_tokens": 5, "output_tokens": 1}}
    reads = [ev("response.created", 0, response={"id": "resp_1"}), ev("response.output_text.delta", 1, delta="x"),
             ev("response.completed", 2, response=done)]
    body, report = FakeBody(reads), FakeReport()
    assert list(responses_relay(body, report)) == [b"", *reads]
    assert report.first_tokens == 1 and report.tokens == (5, 1) and report.outcome is None
    assert body.released == 1 and body.closed == 0


def test_a_cut_stream_ends_with_response_failed_continuing_the_numbering():
    reads = [ev("response.created", 0, response={"id": "resp_9", "object": "response"}),
             ev("response.output_text.delta", 1, delta="x")]
    body, report = FakeBody(reads), FakeReport()
    writes = list(responses_relay(body, report))
    data = json.loads(writes[-1].split(b"data: ", 1)[1])
    assert data["type"] == "response.failed" and data["sequence_number"] == 2
    assert data["response"]["id"] == "resp_9" and data["response"]["status"] == "failed"
    assert report.outcome == UpstreamProtocolError.outcome and body.closed == 1


def test_responses_usage():
    assert responses_usage({"usage": {"input_tokens": 1, "output_tokens": 2}}) == (1, 2)
    assert responses_usage({}) is None and responses_usage(None) is None
