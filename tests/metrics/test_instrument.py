"""Flask hooks and the stream wrapper, driven through app.test_client()."""

from __future__ import annotations

import io
import json
import logging

import pytest
from flask import Flask, Response

from bridge import logs
from bridge.errors import ModelNotFound, UpstreamTimeout
from bridge.metrics import Metrics
from bridge.metrics.instrument import install, observation
from bridge.request_ids import install_request_ids, sanitise_request_id
from bridge.routes.monitoring import monitoring_blueprint


def make_app(token: str | None = None):
    app = Flask("t")
    metrics = Metrics(window=100, version="t", multiproc_dir=None)
    install_request_ids(app)
    install(app, metrics)
    app.register_blueprint(monitoring_blueprint(metrics, token=token, ready=lambda: (True, "fine")))
    state = {}

    @app.get("/hello")
    def hello():
        observation().note_model("m1")
        return {"hi": 1}

    @app.post("/api/chat")
    def chat():
        obs = observation()
        obs.note_model("m1")

        def gen():
            try:
                yield b""
                yield b'{"a":1}\n'
                obs.first_token()
                for _ in range(3):
                    yield b'{"b":2}\n'
                obs.note_tokens(7, 4)
                yield b'{"done":true}\n'
            finally:
                state["upstream_closed"] = True

        return Response(obs.stream_wrap(gen()), mimetype="application/x-ndjson")

    @app.post("/api/broken")
    def broken():
        obs = observation()

        def gen():
            yield b'{"a":1}\n'
            obs.note_outcome(UpstreamTimeout.outcome)
            yield b'{"error":"timed out"}\n'

        return Response(obs.stream_wrap(gen()), mimetype="application/x-ndjson")

    @app.post("/api/raises")
    def raises():
        def gen():
            yield b"x"
            raise UpstreamTimeout("idle")

        return Response(observation().stream_wrap(gen()))

    @app.get("/api/show/<name>")
    def show(name):
        raise ModelNotFound(name)

    @app.errorhandler(ModelNotFound)
    def not_found(exc):
        observation().note_outcome(exc.outcome)
        return {"error": exc.message}, exc.status

    return app, metrics, state


def records(metrics: Metrics):
    return metrics.collector.local()


def counter(metrics: Metrics, **labels) -> float:
    total = 0.0
    for fam in metrics.prom.families():
        if fam.name == "bridge_http_requests":
            for s in fam.samples:
                if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in labels.items()):
                    total += s.value
    return total


def in_progress(metrics: Metrics) -> float:
    return metrics.prom.cumulative()["in_progress"]


def test_plain_request_counted_once_with_request_id():
    app, metrics, _ = make_app()
    resp = app.test_client().get("/hello")
    assert resp.status_code == 200
    assert len(resp.headers["X-Request-ID"]) == 32
    (rec,) = records(metrics)
    assert (rec.route, rec.method, rec.status, rec.outcome, rec.model, rec.stream) == (
        "/hello", "GET", 200, "ok", "m1", False)
    assert rec.bytes_out == len(resp.data)
    assert counter(metrics, route="/hello", code="200") == 1
    assert in_progress(metrics) == 0


def test_stream_recorded_at_close_not_before():
    app, metrics, state = make_app()
    resp = app.test_client().post("/api/chat", data=b'{"x":1}', content_type="application/json")
    assert records(metrics) == []  # headers sent, body not consumed yet
    assert in_progress(metrics) == 1
    body = resp.get_data()
    resp.close()
    assert body.count(b"\n") == 5
    (rec,) = records(metrics)
    assert rec.stream and rec.outcome == "ok" and rec.status == 200
    assert rec.route == "/api/chat" and rec.model == "m1"
    assert rec.chunks == 5 and rec.bytes_out == len(body) and rec.bytes_in == 7
    assert rec.tokens_in == 7 and rec.tokens_out == 4
    assert rec.ttfb_s is not None and rec.ttft_s is not None and rec.ttfb_s <= rec.ttft_s <= rec.duration_s
    assert rec.tpot_s == pytest.approx((rec.duration_s - rec.ttft_s) / 3)
    assert rec.max_gap_s is not None
    assert state["upstream_closed"]
    assert counter(metrics, route="/api/chat") == 1
    assert in_progress(metrics) == 0


def test_client_disconnect_mid_stream():
    app, metrics, state = make_app()
    resp = app.test_client().post("/api/chat", buffered=False)
    it = iter(resp.response)
    assert next(it) == b""  # the header flush the real stream code does
    assert next(it) == b'{"a":1}\n'
    resp.close()  # what gunicorn does after a failed write
    (rec,) = records(metrics)
    assert rec.outcome == "client_disconnect"
    assert rec.chunks == 1 and rec.status == 200
    assert state["upstream_closed"]
    s = metrics.summary(endpoint=None, window_s=None, include_system=False)
    assert s["cancelled_requests"] == 1 and s["failed_requests"] == 0
    assert s["streaming"]["cancelled"] == 1
    assert in_progress(metrics) == 0


def test_close_before_first_chunk_still_records_once():
    app, metrics, state = make_app()
    resp = app.test_client().post("/api/chat", buffered=False)
    resp.close()
    resp.close()
    (rec,) = records(metrics)
    assert rec.outcome == "client_disconnect" and rec.chunks == 0
    assert in_progress(metrics) == 0


def test_head_request_on_stream_route_records():
    app, metrics, _ = make_app()
    app.add_url_rule("/api/chat", "chat_head", app.view_functions["chat"], methods=["HEAD"])
    resp = app.test_client().head("/api/chat")
    resp.close()
    assert len(records(metrics)) == 1


def test_outcome_set_by_route_is_kept_on_a_200_stream():
    app, metrics, _ = make_app()
    resp = app.test_client().post("/api/broken")
    resp.get_data()
    resp.close()
    (rec,) = records(metrics)
    assert rec.status == 200 and rec.outcome == "timeout"  # not a success despite the 200
    s = metrics.summary(endpoint=None, window_s=None, include_system=False)
    assert s["failed_requests"] == 1 and s["streaming"]["timed_out"] == 1


def test_exception_inside_stream_uses_its_outcome():
    app, metrics, _ = make_app()
    resp = app.test_client().post("/api/raises", buffered=False)
    with pytest.raises(UpstreamTimeout):
        list(resp.response)
    resp.close()
    (rec,) = records(metrics)
    assert rec.outcome == "timeout"


def test_error_routes_and_unmatched():
    app, metrics, _ = make_app()
    c = app.test_client()
    assert c.get("/api/show/secret-model").status_code == 404
    assert c.get("/no/such/path/123").status_code == 404
    got = {(r.route, r.outcome, r.status) for r in records(metrics)}
    assert got == {("/api/show/<name>", "not_found", 404), ("unmatched", "not_found", 404)}


def test_request_id_sanitised():
    app, _, _ = make_app()
    c = app.test_client()
    assert c.get("/hello", headers={"X-Request-ID": "abc-123.x:y_z"}).headers["X-Request-ID"] == "abc-123.x:y_z"
    for bad in ("a b", "x" * 129, "<script>", "ä"):
        rid = c.get("/hello", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
        assert rid != bad and len(rid) == 32
    assert c.get("/metrics").headers["X-Request-ID"]
    assert sanitise_request_id(None) != sanitise_request_id(None)


def test_metrics_routes_not_counted():
    app, metrics, _ = make_app()
    c = app.test_client()
    for path in ("/metrics", "/metrics/summary", "/v1/metrics", "/v1/metrics/prometheus", "/v1/metrics/health"):
        assert c.get(path).status_code == 200, path
    assert records(metrics) == []
    assert metrics.summary(endpoint=None, window_s=None, include_system=False)["total_requests"] == 0


def test_access_log_line(caplog, monkeypatch):
    # Without the bridge's logging set-up the line goes through plain logging ...
    monkeypatch.setattr(logs, "_access_writer", None)
    app, _, _ = make_app()
    with caplog.at_level(logging.INFO, logger="bridge.access"):
        resp = app.test_client().get("/hello", headers={"X-Request-ID": "rid-1"})
        resp.close()
    (line,) = [r for r in caplog.records if r.name == "bridge.access"]
    assert line.getMessage() == "request"
    assert (line.request_id, line.route, line.status, line.outcome, line.model, line.stream) == (
        "rid-1", "/hello", 200, "ok", "m1", False)
    assert line.duration_ms >= 0


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_access_line_fast_path_writes_the_same_fields(monkeypatch, fmt):
    # ... and once configured, straight to the log stream: one line per request.
    buf = io.StringIO()
    monkeypatch.setattr(logs, "_access_writer", logs._AccessWriter(logging.StreamHandler(buf), fmt, True))
    app, _, _ = make_app()
    app.test_client().get("/hello", headers={"X-Request-ID": "rid-2"}).close()
    (text,) = buf.getvalue().splitlines()
    if fmt == "json":
        line = json.loads(text)
        assert (line["logger"], line["msg"], line["request_id"], line["route"], line["status"],
                line["outcome"], line["model"], line["stream"], line["ttft_ms"]) == (
            "bridge.access", "request", "rid-2", "/hello", 200, "ok", "m1", False, None)
    else:
        assert "[rid-2] request route=/hello method=GET status=200" in text and "outcome=ok" in text


def test_access_line_respects_the_log_level(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(logs, "_access_writer", logs._AccessWriter(logging.StreamHandler(buf), "json", False))
    app, _, _ = make_app()
    app.test_client().get("/hello").close()
    assert buf.getvalue() == ""


def test_observation_outside_request_is_detached():
    observation().first_token()  # no context at all: harmless
    app, metrics, _ = make_app()
    with app.app_context():
        o = observation()
        o.note_model("x")
        assert list(o.stream_wrap([b"a"])) == [b"a"]
    assert records(metrics) == []


def test_queue_time_from_x_request_start():
    app, metrics, _ = make_app()
    now_ms = int(metrics.clock() * 1000)
    app.test_client().get("/hello", headers={"X-Request-Start": str(now_ms - 20)}).close()
    app.test_client().get("/hello", headers={"X-Request-Start": f"t={(now_ms - 5) / 1000:.3f}"}).close()
    app.test_client().get("/hello", headers={"X-Request-Start": "garbage"}).close()
    q = [r.queue_s for r in records(metrics)]
    assert 0.015 <= q[0] < 5 and 0.0 <= q[1] < 5 and q[2] is None


def test_disabled_metrics_keep_request_ids_and_access_lines(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(logs, "_access_writer", logs._AccessWriter(logging.StreamHandler(buf), "json", True))
    app = Flask("disabled")
    metrics = Metrics(window=10, version="t", multiproc_dir=None, enabled=False)
    install_request_ids(app)
    install(app, metrics)
    app.register_blueprint(monitoring_blueprint(metrics, token=None, ready=lambda: (True, "fine")))

    @app.post("/api/chat")
    def chat():
        obs = observation()
        obs.note_model("m1")
        return Response(obs.stream_wrap(iter([b'{"a":1}\n'])), mimetype="application/x-ndjson")

    c = app.test_client()
    resp = c.post("/api/chat", headers={"X-Request-ID": "rid-off"})
    assert resp.get_data() == b'{"a":1}\n' and resp.headers["X-Request-ID"] == "rid-off"
    resp.close()
    (line,) = [json.loads(t) for t in buf.getvalue().splitlines()]
    assert (line["request_id"], line["route"], line["outcome"], line["stream"]) == ("rid-off", "/api/chat", "ok", True)
    for path in ("/metrics", "/metrics/summary", "/v1/metrics", "/v1/metrics/health"):
        resp = c.get(path)
        assert resp.status_code == 404 and "METRICS_ENABLED" in resp.get_json()["error"], path
    assert c.get("/health").status_code == 200
    assert list(metrics.collector.merged()) == []
