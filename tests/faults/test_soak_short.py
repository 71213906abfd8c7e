"""A 20-second run of perf/soak.py: mixed traffic with faults, no leaks, no hangs, no 500s."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.bridgeproc import REPO

pytestmark = pytest.mark.integration


def test_soak_short(reliability):
    out = subprocess.run([sys.executable, str(REPO / "perf" / "soak.py"), "--minutes", str(20 / 60), "--clients", "8",
                          "--phase-s", "1.5"], cwd=REPO, capture_output=True, text=True, timeout=100)
    print(out.stdout, out.stderr[-3000:])
    rows = [line.strip() for line in out.stdout.splitlines() if "->" in line]
    reliability.row("soak 20 s, 8 clients, faults cycling", outcome=("OK" if out.returncode == 0 else "FAIL") + ": "
                    + "; ".join(rows))
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
