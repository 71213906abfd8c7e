"""deploy/prometheus.yml, alerts.yml, alerts_test.yml and the Grafana dashboard.

promtool checks the files for real; the name checks make sure every ``bridge_*`` series they (and
docs/monitoring.md) use is one the bridge really exposes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.bridgeproc import REPO

DEPLOY = REPO / "deploy"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (apt-get install prometheus)")


def _promtool(*args: str, cwd: Path = DEPLOY) -> subprocess.CompletedProcess:
    # Run from deploy/ so the relative rule_files resolve as they do for an operator.
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


@needs_promtool
def test_check_config():
    result = _promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


@needs_promtool
def test_check_rules():
    result = _promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_rule_unit_tests_pass():
    result = _promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_rule_unit_tests_can_fail(tmp_path):
    """The unit tests are not vacuous: a wrong expectation makes promtool fail."""
    shutil.copy(DEPLOY / "alerts.yml", tmp_path / "alerts.yml")
    broken = (DEPLOY / "alerts_test.yml").read_text().replace("25% of requests fail", "1% of requests fail")
    (tmp_path / "alerts_test.yml").write_text(broken)
    result = _promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0, result.stdout


def test_alerts_cover_the_operational_signals():
    yaml = pytest.importorskip("yaml")
    groups = yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"]
    rules = {r["alert"]: r["expr"] for g in groups for r in g["rules"]}
    wanted = {
        "error rate": "bridge_http_request_outcomes_total",
        "p99 latency": "bridge_http_request_duration_seconds_bucket",
        "TTFT p99": "bridge_time_to_first_token_seconds_bucket",
        "backend down": "bridge_upstream_requests_total",
        "cancellations": 'outcome="client_disconnect"',
        "worker RSS": "bridge_process_resident_memory_bytes",
    }
    for what, needle in wanted.items():
        assert any(needle in expr for expr in rules.values()), f"no alert on {what}"
    tested = set(re.findall(r"alertname: (\w+)", (DEPLOY / "alerts_test.yml").read_text()))
    assert tested <= set(rules), tested - set(rules)


# -- every bridge_* series used in deploy/ and the docs exists -----------------------------------


def _exposed_series() -> set[str]:
    """Sample names the bridge exposes (histogram/counter suffixes included)."""
    from bridge.metrics.prom import PromMetrics

    metrics = PromMetrics(version="test", multiproc_dir=None)
    names: set[str] = set()
    for family in metrics.registry.collect():
        base = family.name
        if family.type == "counter":
            names |= {base + "_total"}
        elif family.type == "histogram":
            names |= {base + "_bucket", base + "_count", base + "_sum", base}
        else:
            names.add(base)
    return names


def _used_series(text: str) -> set[str]:
    return set(re.findall(r"\bbridge_[a-z_]+[a-z]\b", text))


@pytest.mark.parametrize("path", ["deploy/alerts.yml", "deploy/alerts_test.yml", "deploy/grafana-dashboard.json",
                                  "docs/monitoring.md"])
def test_series_names_exist(path):
    used = _used_series((REPO / path).read_text())
    assert used, f"{path} names no bridge_* series"
    unknown = used - _exposed_series() - {"bridge_request_id"}
    assert not unknown, f"{path} uses series the bridge does not expose: {sorted(unknown)}"


def test_dashboard_is_valid_grafana_json():
    board = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    panels = board["panels"]
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    assert exprs and all(e.strip() for e in exprs)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    joined = "\n".join(exprs)
    for needle in ("bridge_http_requests_total", "bridge_http_request_outcomes_total",
                   "bridge_http_request_duration_seconds_bucket", "bridge_time_to_first_token_seconds_bucket",
                   "bridge_tokens_total", "bridge_active_streams", 'outcome="client_disconnect"',
                   "bridge_process_resident_memory_bytes", "bridge_process_cpu_seconds",
                   "bridge_process_open_fds"):
        assert needle in joined, f"dashboard has no panel on {needle}"
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}," in joined


@needs_promtool
def test_dashboard_queries_parse(tmp_path):
    """Every panel query is valid PromQL (checked as recording rules, Grafana variables filled in)."""
    yaml = pytest.importorskip("yaml")
    board = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    rules = [{"record": f"dashboard:query{i}", "expr": e.replace("$__rate_interval", "5m").replace("$instance", ".*")}
             for i, e in enumerate(exprs)]
    (tmp_path / "dashboard_rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = _promtool("check", "rules", "dashboard_rules.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


# -- a fleet: several instances, pulled or pushed --------------------------------------------------


@needs_promtool
def test_check_push_config():
    result = _promtool("check", "config", "prometheus-push.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_push_config_keeps_the_pushed_job_and_instance():
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((DEPLOY / "prometheus-push.yml").read_text())
    (job,) = config["scrape_configs"]
    # Without honor_labels every series would get the Pushgateway's address as "instance".
    assert job["honor_labels"] is True
    assert config["rule_files"] == ["alerts.yml"]
    assert _duration_s(config["global"]["scrape_interval"]) <= 15  # <= PUSH_INTERVAL's default


def _duration_s(text: str) -> float:
    m = re.fullmatch(r"(\d+)(ms|s|m)", text)
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[m.group(2)]


_AGGREGATION = re.compile(r"\b(sum|avg|max|min|count)\s*(?:(by|without)\s*\(([^)]*)\))?\s*\(")


def _aggregations(expr: str) -> list[tuple[str, str | None, set[str]]]:
    return [(op, kind, {x.strip() for x in (labels or "").split(",") if x.strip()})
            for op, kind, labels in _AGGREGATION.findall(expr)]


def test_alerts_keep_instances_apart():
    """Every aggregation in the alert rules keeps the instance label, so with many instances an
    alert names the one in trouble and healthy instances do not dilute a failing one."""
    yaml = pytest.importorskip("yaml")
    groups = yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"]
    checked = 0
    for rule in (r for g in groups for r in g["rules"]):
        for op, kind, labels in _aggregations(rule["expr"]):
            checked += 1
            keeps = (kind == "by" and "instance" in labels) or (kind == "without" and "instance" not in labels)
            assert keeps, f"{rule['alert']}: {op} {kind or ''}({', '.join(sorted(labels))}) drops the instance label"
    assert checked >= 10


def test_aggregation_check_is_not_vacuous():
    assert _aggregations("sum(rate(x[5m]))") == [("sum", "", set())]
    assert _aggregations("sum by (instance, le) (x)") == [("sum", "by", {"instance", "le"})]
    assert _aggregations("max without (pid) (x)") == [("max", "without", {"pid"})]


def test_dashboard_follows_the_instance_picker():
    """Every bridge_* selector of every panel is filtered by the $instance variable (one, some or
    all instances), and the variable lists instances from a series pull and push both have."""
    board = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    variable = next(v for v in board["templating"]["list"] if v["name"] == "instance")
    assert variable["query"]["query"] == "label_values(bridge_build_info, instance)"
    assert variable["includeAll"] and variable["multi"]
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            for selector in re.findall(r"\b(bridge_[a-z_]+|push_time_seconds)(\{[^}]*\})?", target["expr"]):
                assert 'instance=~"$instance"' in selector[1], (panel["title"], target["expr"])
    joined = "\n".join(t["expr"] for p in board["panels"] for t in p.get("targets", []))
    assert "sum by (instance) (rate(bridge_http_requests_total" in joined  # the per-instance view
    assert "push_time_seconds" in joined and "bridge_pushes_total" in joined
