"""CI smoke run of the perf suite: every scenario very briefly, figures produced, no errors.

No timing assertions (the CI machine is shared and small); ``perf.run --smoke`` starts the fake
backend and the bridges (Procfile command) on 127.0.0.1, runs each scenario with tiny counts and
writes RESULTS.md, results.json and the plots into a temporary directory.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import pytest

from tests.bridgeproc import REPO

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (apt-get install wrk)"),
]


def _finite(x) -> bool:
    return isinstance(x, int | float) and not math.isnan(x)


@pytest.mark.timeout(240)
def test_perf_suite_smoke(tmp_path):
    pytest.importorskip("matplotlib")
    # A section another script owns (perf/fleet.py writes one) survives the rewrite.
    fleet = "<!-- perf.fleet: start -->\n\n## Fleet\n\nkept as is\n\n<!-- perf.fleet: end -->"
    (tmp_path / "RESULTS.md").write_text("# old report\n\nold text\n\n" + fleet + "\n")
    proc = subprocess.run([sys.executable, "-m", "perf.run", "--smoke", "--out", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=220)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    res = json.loads((tmp_path / "results.json").read_text())

    for kind in ("nonstream", "stream"):
        c1 = res["c1"][kind]
        assert c1["errors"] == {"bridge": 0, "direct": 0}
        assert all(_finite(c1[k]) for k in ("bridge_p50_ms", "bridge_p99_ms", "direct_p50_ms", "added_p99_ms"))
    for kind in ("nonstream", "stream16"):
        f = res["frontier"][kind]
        assert f["bridge_errors"] == 0 and f["direct_errors"] == 0
        assert f["bridge_max_rps"] > 0 and f["direct_max_rps"] > 0
        m = res["monitoring"][kind]
        assert m["errors"] == 0 and m["median_ratio"] > 0
    paced = res["paced"]
    for name in ("bridge", "direct"):
        assert paced[name]["errors"] == 0
        assert paced[name]["frames"] == paced[name]["frames_expected"] > 0
    assert _finite(paced["added_ttft_p99_ms"]) and _finite(paced["added_frame_p99_ms"])
    many = res["many"]
    assert many["errors"] == 0 and many["complete_frames"] == many["streams"] and many["workers"] == 1
    mem = res["memory"]
    assert mem["requests"] > 0 and mem["errors"] == 0 and len(mem["workers"]) == 2
    anchors = res["anchors"]  # same-run anchors (issue 17): Flask hello and the bare proxy
    for name in ("hello", "bridge_nonstream", "proxy_nonstream", "bridge_stream16", "proxy_stream16"):
        assert anchors[name + "_errors"] == 0 and anchors[name + "_rps"] > 0
    assert anchors["nonstream_vs_hello"] > 0 and anchors["stream_vs_proxy"] > 0
    for row in res["token_cost"]["rows"]:  # CPU per streamed token against stream length
        for name in ("bridge", "proxy"):
            assert row[name]["errors"] == 0 and _finite(row[name]["cpu_us_per_token"])
    readside = res["readside"]  # /metrics/summary and /metrics build times
    assert readside["summary"] and all("error" not in c and c["records"] == c["window"] * c["workers"]
                                       for c in readside["summary"])
    assert readside["scrape"] and all("error" not in c and c["series"] > 0 for c in readside["scrape"])
    for row in res["open_streams"]["rows"]:  # memory per open stream
        assert row["errors"] == 0 and row["complete"] == row["streams"] and _finite(row["kb_per_stream"])
    col = res["collector"]
    assert col["pytest_rc"] == 0
    assert col["cases"]["test_collector_ingest[100000]"]["lost"] == 0

    report = (tmp_path / "RESULTS.md").read_text()
    assert "## Figures vs targets" in report and "CPUs" in report and "load at start" in report
    assert fleet in report and "old text" not in report
    assert "## 8. Same-run anchors" in report and "## 11. Memory per open stream" in report
    for png in ("latency_c1.png", "throughput_frontier.png", "streaming_paced.png", "monitoring_cost.png",
                "memory.png", "token_cost.png", "readside.png", "open_streams.png"):
        assert (tmp_path / png).stat().st_size > 1000
