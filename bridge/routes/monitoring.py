"""Monitoring routes: Prometheus exposition, JSON summary, liveness and readiness.

``/metrics``, ``/metrics/summary`` and the ``/v1/metrics*`` aliases need ``Authorization: Bearer
<token>`` when a metrics token is configured; ``/health`` and ``/ready`` never do. None of these
routes is counted in the metrics (``instrument.install`` excludes them).

The ``/v1/metrics`` alias also accepts the existing proxy's query names ``endpoint_filter`` and
``time_range_minutes`` and, like it, includes the system section unless told otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from flask import Blueprint, Response, jsonify, request

from ..error_bodies import ollama_error
from ..metrics import Metrics
from .auth import bearer_token, matches

__all__ = ["monitoring_blueprint"]

#: /v1/metrics/health says "degraded" when at least this share of recent requests failed
#: because of the bridge or the backend (client errors such as 404 probes do not count).
DEGRADED_SERVER_ERROR_RATE = 0.1

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class _BadParam(ValueError):
    pass


def monitoring_blueprint(
    metrics: Metrics, *, token: str | None, ready: Callable[[], tuple], instance: str | None = None
) -> Blueprint:
    """``instance`` (INSTANCE_NAME) is named in the summary and in /health: which member of a fleet answered."""
    bp = Blueprint("monitoring", __name__)
    named = {"instance": instance} if instance else {}
    expected = token.encode() if token else None

    def authorised() -> bool:
        return expected is None or matches(bearer_token(), expected)

    def disabled() -> Response:
        resp = jsonify(ollama_error("metrics are disabled on this instance (METRICS_ENABLED=false)"))
        resp.status_code = 404
        return resp

    def denied() -> Response:
        resp = jsonify(ollama_error("metrics need 'Authorization: Bearer <METRICS_TOKEN>'"))
        resp.status_code = 401
        resp.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return resp

    def bad(message: str) -> Response:
        resp = jsonify(ollama_error(message))
        resp.status_code = 400
        return resp

    def prometheus() -> Response:
        if not authorised():
            return denied()
        if not metrics.enabled:
            return disabled()
        body, content_type = metrics.exposition()
        return Response(body, status=200, content_type=content_type,
                        headers={"Cache-Control": "no-store"})

    def summary_args(*, legacy: bool) -> dict:
        args = request.args
        endpoint = args.get("endpoint")
        if endpoint is None and legacy:
            endpoint = args.get("endpoint_filter")
        window_s = _positive_float(args.get("window_s"), "window_s")
        if window_s is None and legacy:
            minutes = _positive_float(args.get("time_range_minutes"), "time_range_minutes")
            window_s = minutes * 60.0 if minutes is not None else None
        include_system = _flag(args.get("include_system"), default=legacy)
        return {"endpoint": (endpoint or "").strip()[:200] or None, "window_s": window_s,
                "include_system": include_system}

    def summary(legacy: bool = False) -> Response:
        if not authorised():
            return denied()
        if not metrics.enabled:
            return disabled()
        try:
            kwargs = summary_args(legacy=legacy)
        except _BadParam as exc:
            return bad(str(exc))
        resp = jsonify({**named, **metrics.summary(**kwargs)})
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @bp.get("/metrics")
    def metrics_text():
        return prometheus()

    @bp.get("/v1/metrics/prometheus")
    def metrics_text_alias():
        return prometheus()

    @bp.get("/metrics/summary")
    def metrics_summary():
        return summary()

    @bp.get("/v1/metrics")
    def metrics_summary_alias():
        return summary(legacy=True)

    @bp.get("/v1/metrics/health")
    def metrics_health():
        if not authorised():
            return denied()
        if not metrics.enabled:
            return disabled()
        s = metrics.summary(endpoint=None, window_s=None, include_system=False)
        window = s["window"]
        degraded = window["server_error_rate"] >= DEGRADED_SERVER_ERROR_RATE
        return jsonify({
            "status": "degraded" if degraded else "healthy",
            "success_rate": s["success_rate"],
            "error_rate": s["error_rate"],
            "recent_server_error_rate": window["server_error_rate"],
            "recent_requests": window["requests"],
            "active_requests": s["active_requests"],
            "total_requests": s["total_requests"],
            "successful_requests": s["successful_requests"],
            "failed_requests": s["failed_requests"],
            "avg_response_time_ms": s["performance"]["avg_ms"],
            "p95_response_time_ms": s["performance"]["p95_ms"],
            "uptime_seconds": round(max(0.0, metrics.clock() - metrics.started_s), 3),
            "version": metrics.version,
        })

    @bp.get("/health")
    def health():
        return jsonify({"status": "ok", **named})

    @bp.get("/ready")
    def readiness():
        ok, reason, *more = ready()
        extra = more[0] if more else {}  # e.g. {"backends": [each backend's state]}
        if ok:
            return jsonify({"status": "ready", "reason": reason, **extra})
        resp = jsonify({"status": "not_ready", "reason": reason, **ollama_error(reason), **extra})
        resp.status_code = 503
        return resp

    return bp


def _positive_float(raw: str | None, name: str) -> float | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise _BadParam(f"'{name}' must be a number greater than 0") from None
    if not math.isfinite(value) or value <= 0:
        raise _BadParam(f"'{name}' must be a finite number greater than 0")
    return value


def _flag(raw: str | None, *, default: bool) -> bool:
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise _BadParam("'include_system' must be true/false/1/0")
