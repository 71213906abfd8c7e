"""Tests of bridge.metrics and the monitoring routes."""
