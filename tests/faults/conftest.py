"""Fixtures for the fault tests: ``reliability`` records rows for docs/RELIABILITY.md."""

from tests.faults.reliability_table import reliability

__all__ = ["reliability"]
