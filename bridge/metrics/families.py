"""The bridge's Prometheus metric families: names, help texts, labels, buckets, multiprocess modes.

Definitions only (nothing here observes a request or reads a value back): :class:`MetricFamilies`
registers every ``bridge_*`` family in one registry. Names, labels and buckets follow
``reference/anchors.md`` section 2.6: ``bridge_`` prefix, base units, ``_total`` counters,
histograms with explicit buckets, bounded labels only (route template, method, status code, the
app's model label, an outcome from a closed set, a configured backend or key name).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..translate.fallback import ADDED_PARAMS  # the closed set of the ``param`` label

__all__ = [
    "LONG_BUCKETS",
    "MAX_GAP_BUCKETS",
    "QUEUE_BUCKETS",
    "TPOT_BUCKETS",
    "TTFT_BUCKETS",
    "MetricFamilies",
    "param_dropped_counter",
]

#: Whole request, streaming included (OTel client-duration x2 series, extended both ways).
LONG_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24,
                20.48, 40.96, 81.92, 163.84, 327.68)
#: Time to first token (OTel server TTFT buckets + vLLM's extension).
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0, 20.0, 40.0, 80.0)
#: Time per output token (OTel buckets + 5 ms).
TPOT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
#: Longest silence inside a stream; 30 and 55 s are Heroku's router windows.
MAX_GAP_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0, 55.0, 90.0)
#: Router -> app wait, from X-Request-Start.
QUEUE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def param_dropped_counter(registry: CollectorRegistry) -> Counter:
    """``bridge_upstream_param_dropped_total{param}``: backend calls sent without a field the bridge
    adds itself, because the backend refused it; every ``param`` of the closed set starts at 0."""
    counter = Counter(
        "bridge_upstream_param_dropped_total",
        "Backend calls sent without a field the bridge adds itself (the backend refused it), by field.",
        ["param"], registry=registry)
    for param in ADDED_PARAMS:
        counter.labels(param)
    return counter


class MetricFamilies:
    """Every ``bridge_*`` family, registered in ``registry`` in a fixed order (the exposition's).

    ``backends`` (names from BACKENDS_FILE, or "default") and ``keys`` (inbound key names from
    BRIDGE_API_KEYS) are closed configured sets: they are the only values of the ``backend`` and
    ``key`` labels. ``bridge_build_info{version}`` is set to 1 here.
    """

    def __init__(self, registry: CollectorRegistry, *, version: str, backends: tuple[str, ...] = (),
                 keys: tuple[str, ...] = ()) -> None:
        r = registry
        self.requests = Counter(
            "bridge_http_requests_total", "Inbound HTTP requests, counted when the response ends.",
            ["route", "method", "code"], registry=r)
        self.duration = Histogram(
            "bridge_http_request_duration_seconds",
            "Inbound request duration, streaming included (until the body closes).",
            ["route", "method"], buckets=LONG_BUCKETS, registry=r)
        self.in_progress = Gauge(
            "bridge_http_requests_in_progress", "Inbound requests being served (streams included).",
            ["route"], multiprocess_mode="livesum", registry=r)
        self.outcomes = Counter(
            "bridge_http_request_outcomes_total",
            "Inbound requests by how they ended (ok, client_disconnect, timeout, ...).",
            ["route", "outcome"], registry=r)
        self.queue = Histogram(
            "bridge_http_request_queue_seconds",
            "Router to app wait, from the X-Request-Start header.",
            buckets=QUEUE_BUCKETS, registry=r)
        self.upstream = Counter(
            "bridge_upstream_requests_total", "Requests forwarded to the backend, by outcome.",
            ["model", "outcome"], registry=r)
        self.ttft = Histogram(
            "bridge_time_to_first_token_seconds",
            "Request received to first content line written, per stream.",
            ["model"], buckets=TTFT_BUCKETS, registry=r)
        self.tpot = Histogram(
            "bridge_time_per_output_token_seconds",
            "(duration - TTFT) / (output tokens - 1), one observation per completed stream.",
            ["model"], buckets=TPOT_BUCKETS, registry=r)
        self.max_gap = Histogram(
            "bridge_stream_max_gap_seconds", "Longest silence between two chunks of a stream.",
            buckets=MAX_GAP_BUCKETS, registry=r)
        self.tokens = Counter(
            "bridge_tokens_total", "Tokens reported by the backend, by type (input/output).",
            ["model", "type"], registry=r)
        self.streams = Counter(
            "bridge_streams_total", "Streamed responses, counted when the body closes, by outcome.",
            ["route", "outcome"], registry=r)
        self.response_bytes = Counter(
            "bridge_response_bytes_total", "Response body bytes sent.", ["route"], registry=r)
        self.build_info = Gauge(
            "bridge_build_info", "Build information; the value is always 1.", ["version"],
            multiprocess_mode="mostrecent", registry=r)
        self.active_streams = Gauge(
            "bridge_active_streams", "Streams being sent by this worker.",
            multiprocess_mode="liveall", registry=r)
        self.rss = Gauge(
            "bridge_process_resident_memory_bytes", "Resident memory of this worker (psutil).",
            multiprocess_mode="liveall", registry=r)
        self.cpu = Gauge(
            "bridge_process_cpu_seconds",
            "User + system CPU time of this worker (psutil); cumulative, use rate().",
            multiprocess_mode="liveall", registry=r)
        self.fds = Gauge(
            "bridge_process_open_fds", "Open file descriptors of this worker (psutil).",
            multiprocess_mode="liveall", registry=r)
        self.start_time = Gauge(
            "bridge_process_start_time_seconds", "Start time of this worker, epoch seconds.",
            multiprocess_mode="liveall", registry=r)
        # Push mode (PUSHGATEWAY_URL, bridge/metrics/push.py): outcome in push.OUTCOMES.
        self.pushes = Counter(
            "bridge_pushes_total", "Pushes of the instance's metrics to the Pushgateway, by outcome.",
            ["outcome"], registry=r)
        self.param_dropped = param_dropped_counter(r)
        self.build_info.labels(version).set(1)
        self._usage_families(r, backends, keys)

    def _usage_families(self, r: CollectorRegistry, backends: tuple[str, ...], keys: tuple[str, ...]) -> None:
        """Per backend and per inbound key name: both closed configured sets; any other value is
        never a label."""
        self.backend_names = frozenset(backends)
        self.key_names = frozenset(keys)
        self.backend_requests = Counter(
            "bridge_backend_requests_total",
            "Calls sent to each backend (every attempt, failovers included), by outcome at the answer's start.",
            ["backend", "outcome"], registry=r)
        self.backend_ttft = Histogram(
            "bridge_backend_time_to_first_token_seconds",
            "Request received to first content line written, per stream, by the backend that answered.",
            ["backend"], buckets=TTFT_BUCKETS, registry=r)
        self.backend_tokens = Counter(
            "bridge_backend_tokens_total", "Tokens reported by each backend, by type (input/output).",
            ["backend", "type"], registry=r)
        self.backend_in_flight = Gauge(
            "bridge_backend_in_flight", "Calls to each backend in progress (streams until they close).",
            ["backend"], multiprocess_mode="livesum", registry=r)
        # The worst worker's breaker (each worker keeps its own): max over live workers.
        self.backend_circuit = Gauge(
            "bridge_backend_circuit_state",
            "Circuit breaker of each backend: 0 closed, 1 half-open, 2 open (the worst live worker's).",
            ["backend"], multiprocess_mode="livemax", registry=r)
        self.failovers = Counter(
            "bridge_upstream_failovers_total",
            "Calls moved on to another backend before the first byte, by the backend that failed.",
            ["backend"], registry=r)
        self.key_requests = Counter(
            "bridge_key_requests_total", "Requests per inbound key name (BRIDGE_API_KEYS name:key).",
            ["key"], registry=r)
        self.key_tokens = Counter(
            "bridge_key_tokens_total", "Tokens per inbound key name, by type (input/output).",
            ["key", "type"], registry=r)
