"""``perf.fleet --smoke``: two steps briefly, the fleet's totals exact in pull and push mode.

Runs the script as a command into a temporary ``--out`` (never the tracked perf/RESULTS.md):
the section is appended after what the file already holds, once, and replaced on a second run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.bridgeproc import REPO
from tests.fleet.promprocs import PROMETHEUS, PUSHGATEWAY

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(None in (shutil.which("wrk"), PUSHGATEWAY, PROMETHEUS),
                       reason="needs wrk, prometheus-pushgateway and prometheus (apt-get install ...)"),
]


@pytest.mark.timeout(200)
def test_fleet_smoke_counts_exactly(tmp_path):
    pytest.importorskip("matplotlib")
    (tmp_path / "RESULTS.md").write_text("# earlier results\n\nkept as they are\n")
    proc = subprocess.run([sys.executable, "-m", "perf.fleet", "--smoke", "--out", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    res = json.loads((tmp_path / "fleet.json").read_text())
    assert [s["instances"] for s in res["steps"]] == [1, 2]
    for step in res["steps"]:
        assert step["sent"] > 0
        assert step["pull_total"] == step["sent"] and step["push_total"] == step["sent"], step
        assert set(step["push_per_instance"]) == {f"n{step['instances']}-{k + 1}" for k in range(step["instances"])}
        for run in step["runs"].values():
            assert run["errors"] == 0
            assert sum(run["per_instance_requests"].values()) == run["requests"]
    costs = res["costs"]
    assert costs["nonstream"]["cpu_ms_per_request"] > 0 and costs["open_streams"]["complete"] > 0
    text = (tmp_path / "RESULTS.md").read_text()
    assert text.startswith("# earlier results\n\nkept as they are\n")
    assert text.count("<!-- perf.fleet: start -->") == 1 and "| 2 | nonstream |" in text
    assert (tmp_path / "fleet.png").stat().st_size > 0
