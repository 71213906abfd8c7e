"""bridge.error_bodies: each API family's error body, and which family a path belongs to."""

from __future__ import annotations

import pytest

from bridge import error_bodies
from bridge.error_bodies import anthropic_error, for_path, ollama_error, ollama_error_for, openai_error


def test_ollama_shape():
    assert ollama_error("model 'x' not found") == {"error": "model 'x' not found"}
    assert ollama_error_for(404, "gone") == {"error": "gone"}


@pytest.mark.parametrize(("status", "kind"), [(400, "invalid_request_error"), (401, "authentication_error"),
                                              (404, "not_found_error"), (429, "rate_limit_error"),
                                              (500, "api_error")])
def test_openai_shape(status, kind):
    assert openai_error(status, "boom") == {"error": {"message": "boom", "type": kind, "param": None, "code": None}}
    assert openai_error(502, "")["error"]["message"]  # never empty


@pytest.mark.parametrize(("status", "kind"), [(400, "invalid_request_error"), (401, "authentication_error"),
                                              (404, "not_found_error"), (429, "rate_limit_error"),
                                              (500, "api_error")])
def test_anthropic_shape(status, kind):
    assert anthropic_error(status, "why") == {"type": "error", "error": {"type": kind, "message": "why"}}
    assert anthropic_error(status, "")["error"]["message"] == f"HTTP {status}"


@pytest.mark.parametrize(("path", "family"), [
    ("/v1/messages", anthropic_error),
    ("/v1/messages/count_tokens", anthropic_error),
    ("/v1/messagesX", openai_error),
    ("/v1/chat/completions", openai_error),
    ("/v1/responses", openai_error),
    ("/v1/models", openai_error),
    ("/v1/", openai_error),
    ("/v1/metrics", ollama_error_for),
    ("/v1/metrics/health", ollama_error_for),
    ("/v1", ollama_error_for),
    ("/api/chat", ollama_error_for),
    ("/metrics", ollama_error_for),
    ("/ready", ollama_error_for),
    ("/", ollama_error_for),
])
def test_family_by_path(path, family):
    assert for_path(path) is family


def test_every_renderer_takes_status_and_message():
    for path in ("/api/x", "/v1/x", "/v1/messages"):
        body = for_path(path)(418, "teapot")
        assert "teapot" in str(body)
    assert set(error_bodies.__all__) >= {"ollama_error", "openai_error", "anthropic_error", "for_path"}
