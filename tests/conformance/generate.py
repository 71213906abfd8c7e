"""Write tests/conformance/fields.md from what the bridge really sends.

    .venv/bin/python -m tests.conformance.generate           # (re)write the table
    .venv/bin/python -m tests.conformance.generate --check   # exit 1 when the table is out of date

Starts the fake backend and the bridge exactly as the tests do (the Procfile's gunicorn, 2 workers),
runs the scenario of ``sources.observe`` and renders every field it saw with its source.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.bridgeproc import BridgeProcess
from tests.conformance.sources import ENV, observe, render
from tests.fakes.backend import FakeBackend

TABLE = Path(__file__).with_name("fields.md")


def current_table(backend: FakeBackend, tmp_dir: Path) -> str:
    """The table as the bridge answers now (its own bridge in front of ``backend``)."""
    bridge = BridgeProcess({"OPENAI_API_BASE_URL": backend.url, **ENV}, workers=2, tmp_dir=tmp_dir,
                           log_name="conformance")
    try:
        bridge.wait_ready()
        return render(observe(bridge.url, backend))
    finally:
        bridge.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when out of date")
    args = parser.parse_args(argv)
    with FakeBackend(models=("m1", "m2", "e1")) as backend, tempfile.TemporaryDirectory() as tmp:
        table = current_table(backend, Path(tmp))
    if args.check:
        same = TABLE.exists() and TABLE.read_text() == table
        print(f"{TABLE}: {'up to date' if same else 'OUT OF DATE'}")
        return 0 if same else 1
    TABLE.write_text(table)
    print(f"wrote {TABLE} ({table.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
