"""Test doubles for the bridge test-suite (fake OpenAI-compatible backend)."""

from .backend import FakeBackend, Recorded, parse_sse, sse_event

__all__ = ["FakeBackend", "Recorded", "sse_event", "parse_sse"]
