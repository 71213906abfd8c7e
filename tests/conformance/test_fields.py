"""The conformance table (tests/conformance/fields.md) matches what the bridge really sends.

Runs the generator's scenario against a bridge of its own (gunicorn, 2 workers) in front of the
session's fake backend and compares with the committed table; it never writes the file.
"""

from __future__ import annotations

import pytest

from tests.conformance.generate import TABLE, current_table
from tests.conformance.sources import UNRECORDED

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60, func_only=True)]

REGENERATE = "run `.venv/bin/python -m tests.conformance.generate` and commit tests/conformance/fields.md"


@pytest.fixture(scope="module")
def table(fake_backend, tmp_path_factory):
    return current_table(fake_backend, tmp_path_factory.mktemp("conformance"))


def test_every_field_sent_has_a_recorded_source(table):
    missing = [line for line in table.splitlines() if UNRECORDED in line]
    assert not missing, "fields without a source in tests/conformance/sources.py:\n" + "\n".join(missing)


def test_the_committed_table_matches_what_the_bridge_sends(table):
    committed = TABLE.read_text().splitlines() if TABLE.exists() else []
    now = table.splitlines()
    gone = [line for line in committed if line not in now]
    new = [line for line in now if line not in committed]
    assert not gone and not new, (
        f"{TABLE.name} is out of date ({REGENERATE}).\n"
        "no longer sent or changed:\n" + "\n".join(gone) + "\nnew:\n" + "\n".join(new))


def test_the_table_covers_the_catalogue_fields_clients_read(table):
    # The fields this issue fills: present in the table with an integer type, never "unrecorded".
    for needed in ("| `models[].size` | integer |", "| `models[].size_vram` | integer |",
                   "| `models[].context_length` | integer |", "| `model_info.<family>.context_length` | integer |",
                   "| `details.parameter_size` | string |", "| `template` | string |"):
        assert needed in table, needed
