"""bridge.metrics.families: the family set (names, types, labels), the closed label sets, and the
issue-18 ``bridge_upstream_param_dropped_total`` counter."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from bridge.metrics import Metrics
from bridge.metrics.families import MetricFamilies
from tests.metrics.test_prom import families, sample_metrics


def test_metric_set_types_and_labels():
    fams = families(sample_metrics())
    expected = {
        "bridge_http_requests": ("counter", {"route", "method", "code"}),
        "bridge_http_request_duration_seconds": ("histogram", {"route", "method"}),
        "bridge_http_requests_in_progress": ("gauge", {"route"}),
        "bridge_http_request_outcomes": ("counter", {"route", "outcome"}),
        "bridge_http_request_queue_seconds": ("histogram", set()),
        "bridge_upstream_requests": ("counter", {"model", "outcome"}),
        "bridge_time_to_first_token_seconds": ("histogram", {"model"}),
        "bridge_time_per_output_token_seconds": ("histogram", {"model"}),
        "bridge_stream_max_gap_seconds": ("histogram", set()),
        "bridge_tokens": ("counter", {"model", "type"}),
        "bridge_streams": ("counter", {"route", "outcome"}),
        "bridge_response_bytes": ("counter", {"route"}),
        "bridge_build_info": ("gauge", {"version"}),
        "bridge_active_streams": ("gauge", set()),
        "bridge_process_resident_memory_bytes": ("gauge", set()),
        "bridge_process_cpu_seconds": ("gauge", set()),
        "bridge_process_open_fds": ("gauge", set()),
        "bridge_process_start_time_seconds": ("gauge", set()),
    }
    for name, (typ, labels) in expected.items():
        assert name in fams, name
        assert fams[name].type == typ, name
        for s in fams[name].samples:
            assert set(s.labels) - {"le"} == labels, (name, s.labels)
    assert not any(name.endswith("_created") for name in fams)


def test_param_dropped_counter_closed_set():
    m = Metrics(window=10, version="t", multiproc_dir=None)
    m.param_dropped("reasoning_effort")
    m.param_dropped("reasoning_effort")
    m.param_dropped("temperature")  # not a field the bridge adds: ignored, never a new label
    text = m.exposition()[0].decode()
    samples = {s.labels["param"]: s.value for f in text_string_to_metric_families(text)
               if f.name == "bridge_upstream_param_dropped" for s in f.samples}
    assert samples == {"reasoning_effort": 2.0, "chat_template_kwargs": 0.0, "stream_options": 0.0}


def test_families_register_in_the_given_registry_in_a_fixed_order():
    registry = CollectorRegistry()
    fams = MetricFamilies(registry, version="7", backends=("b1",), keys=("k1",))
    names = [f.name for f in registry.collect()]
    assert names[:3] == ["bridge_http_requests", "bridge_http_request_duration_seconds",
                         "bridge_http_requests_in_progress"]
    assert names[-3:] == ["bridge_upstream_failovers", "bridge_key_requests", "bridge_key_tokens"]
    assert len(names) == len(set(names)) == 28
    assert fams.backend_names == frozenset({"b1"}) and fams.key_names == frozenset({"k1"})
    build = [s for f in registry.collect() if f.name == "bridge_build_info" for s in f.samples]
    assert [(s.labels, s.value) for s in build] == [({"version": "7"}, 1.0)]
