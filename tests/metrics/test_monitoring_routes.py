"""The monitoring blueprint: token guard, parameters, aliases, health and readiness."""

from __future__ import annotations

import time

from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from bridge.metrics import Metrics
from bridge.metrics.instrument import install
from bridge.metrics.records import Record
from bridge.routes.monitoring import monitoring_blueprint


def make_client(token=None, ready=(True, "backend reachable"), records=()):
    app = Flask("mon")
    metrics = Metrics(window=100, version="1.0", multiproc_dir=None)
    for rec in records:
        metrics.observe(rec)
    install(app, metrics)
    app.register_blueprint(monitoring_blueprint(metrics, token=token, ready=lambda: ready))
    return app.test_client(), metrics


def rec(outcome="ok", status=200, route="/api/chat", ts=None):
    return Record(ts_s=ts or time.time(), route=route, method="POST", status=status, duration_s=0.2,
                  outcome=outcome)


def test_token_guard():
    c, _ = make_client(token="s3cret")
    for path in ("/metrics", "/metrics/summary", "/v1/metrics", "/v1/metrics/prometheus", "/v1/metrics/health"):
        resp = c.get(path)
        assert resp.status_code == 401, path
        assert "error" in resp.get_json()
        assert c.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get(path, headers={"Authorization": "bearer s3cret"}).status_code == 200
    assert c.get("/health").status_code == 200
    assert c.get("/ready").status_code == 200


def test_prometheus_route_content_type_and_body():
    c, _ = make_client(records=[rec()])
    resp = c.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    names = {f.name for f in text_string_to_metric_families(resp.get_data(as_text=True))}
    assert "bridge_http_requests" in names
    assert c.get("/v1/metrics/prometheus").get_data().startswith(b"# HELP")


def test_summary_params():
    c, _ = make_client(records=[rec(), rec(route="/api/tags"), rec(ts=1.0)])
    s = c.get("/metrics/summary").get_json()
    assert s["total_requests"] == 3 and s["period"]["window_records"] == 3 and "system" not in s
    s = c.get("/metrics/summary?endpoint=tags&window_s=60&include_system=1").get_json()
    assert s["period"]["window_records"] == 1 and set(s["endpoints"]) == {"/api/tags"}
    assert s["system"]["process"]["rss_bytes"] > 0 and s["system"]["workers"] == 1
    assert c.get("/metrics/summary?window_s=60").get_json()["period"]["window_records"] == 2
    for bad in ("window_s=0", "window_s=-1", "window_s=abc", "window_s=nan", "window_s=inf",
                "include_system=maybe"):
        resp = c.get(f"/metrics/summary?{bad}")
        assert resp.status_code == 400, bad
        assert "error" in resp.get_json()
    assert c.get("/metrics/summary?endpoint=&window_s=&foo=bar").status_code == 200
    assert c.get("/metrics/summary?endpoint=" + "%22%5C" * 500).status_code == 200


def test_legacy_alias_accepts_old_parameter_names():
    c, _ = make_client(records=[rec(), rec(route="/api/tags"), rec(ts=1.0)])
    s = c.get("/v1/metrics?endpoint_filter=tags&time_range_minutes=1").get_json()
    assert s["period"]["window_records"] == 1 and "system" in s
    assert "system" not in c.get("/v1/metrics?include_system=false").get_json()
    for key in ("total_requests", "successful_requests", "failed_requests", "success_rate", "performance",
                "endpoints", "streaming", "period"):
        assert key in s


def test_empty_window_never_fails():
    c, _ = make_client()
    for path in ("/metrics/summary", "/metrics/summary?window_s=0.0001&endpoint=zzz&include_system=true",
                 "/v1/metrics", "/v1/metrics/health", "/metrics"):
        assert c.get(path).status_code == 200, path


def test_health_alias_status():
    c, _ = make_client(records=[rec()] * 9 + [rec("not_found", 404)] * 20)
    h = c.get("/v1/metrics/health").get_json()
    assert h["status"] == "healthy"  # 404 probes do not degrade the service
    c, _ = make_client(records=[rec()] * 8 + [rec("upstream_error", 502)] * 2)
    h = c.get("/v1/metrics/health")
    assert h.status_code == 200
    body = h.get_json()
    assert body["status"] == "degraded" and body["success_rate"] == 0.8 and body["total_requests"] == 10


def test_health_and_ready():
    c, _ = make_client()
    assert c.get("/health").get_json() == {"status": "ok"}
    assert c.get("/ready").get_json()["status"] == "ready"
    c, _ = make_client(ready=(False, "backend not ready: connection refused"))
    resp = c.get("/ready")
    assert resp.status_code == 503
    assert resp.get_json()["reason"] == "backend not ready: connection refused"
