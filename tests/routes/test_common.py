"""bridge/routes/common.py: a backend's "no such model" becomes our 404, the RFC 3339 clock, and the
worker's Services (how ``think`` is translated when backends have their own THINK_CONTROL, one
deadline per request, backend calls). Backends are built as tests/test_backend_pool.py builds them;
calls go to the built-in demo backend in-process (no socket, no gunicorn)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from flask import Flask

from bridge.backend_pool import BackendPool
from bridge.backends import Backend
from bridge.config import DEMO_BACKEND_URL, Settings
from bridge.demo_backend import demo_transport
from bridge.errors import ModelNotFound, UpstreamHTTPError
from bridge.modelmap import ModelMap
from bridge.routes.common import Services, call_backend, now_rfc3339, resolve_model, translate_not_found

app = Flask(__name__)


# -- translate_not_found ---------------------------------------------------------------------------
@pytest.mark.parametrize("status", [400, 404])
@pytest.mark.parametrize("message", [
    "The model `llama9` does not exist",
    "model 'llama9' not found, try pulling it first",
    "Model_not_found: llama9",
    "unknown model llama9",
])
def test_a_backend_saying_the_model_is_missing_becomes_model_not_found(status, message):
    got = translate_not_found(UpstreamHTTPError(status, message), "llama9:latest")
    assert isinstance(got, ModelNotFound)
    assert (got.status, got.message, got.model) == (404, "model 'llama9:latest' not found", "llama9:latest")


@pytest.mark.parametrize("status", [401, 403, 422, 429, 500, 502, 503])
def test_other_statuses_are_passed_on_unchanged_even_with_a_not_found_message(status):
    exc = UpstreamHTTPError(status, "The model `llama9` does not exist")
    assert translate_not_found(exc, "llama9") is exc


@pytest.mark.parametrize("status", [400, 404])
@pytest.mark.parametrize("message", ["messages: field required", "Not Found", "backend returned HTTP 404", ""])
def test_other_messages_are_passed_on_unchanged(status, message):
    exc = UpstreamHTTPError(status, message)
    assert translate_not_found(exc, "m1") is exc


# -- now_rfc3339 -----------------------------------------------------------------------------------
def test_now_is_utc_rfc3339_with_microseconds_and_z():
    before = datetime.now(timezone.utc)
    text = now_rfc3339()
    after = datetime.now(timezone.utc)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z", text), text
    parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert before - timedelta(microseconds=1) <= parsed <= after
    assert datetime.fromisoformat(text.replace("Z", "+00:00")) == parsed


# -- Services ----------------------------------------------------------------------------------------
def services_for(*backends: Backend, think_control: str = "reasoning_effort", **settings) -> Services:
    s = Settings(demo_backend=False, backends=backends, think_control=think_control, **settings)
    return Services(settings=s, modelmap=ModelMap(), started_at="2025-01-01T00:00:00.000000Z",
                    pool=BackendPool(s))


def backend(name: str, **kw) -> Backend:
    return Backend(name, "http://127.0.0.1:9/v1", models=("m1",), **kw)


@pytest.mark.parametrize("think_control", ["reasoning_effort", "chat_template_kwargs", "both", "off"])
def test_without_backend_think_controls_the_global_one_is_used_and_nothing_is_adapted(think_control):
    services = services_for(backend("a"), backend("b"), think_control=think_control)
    assert services.think_control == think_control
    assert services.think_controls is None


def test_the_single_backend_of_the_plain_settings_uses_the_global_think_control():
    s = Settings(demo_backend=False, backend_url="http://127.0.0.1:9/v1", think_control="off")
    services = Services(settings=s, modelmap=ModelMap(), started_at="x", pool=BackendPool(s))
    assert (services.think_control, services.think_controls) == ("off", None)


def test_one_backend_with_its_own_think_control_makes_routes_send_both_and_each_backend_its_own():
    services = services_for(backend("a", think_control="chat_template_kwargs"), backend("b"), backend("c"),
                            think_control="reasoning_effort")
    assert services.think_control == "both"
    assert services.think_controls == {"a": "chat_template_kwargs", "b": "reasoning_effort",
                                       "c": "reasoning_effort"}


def test_every_backend_with_its_own_think_control():
    services = services_for(backend("a", think_control="off"), backend("b", think_control="chat_template_kwargs"),
                            think_control="reasoning_effort")
    assert services.think_control == "both"
    assert services.think_controls == {"a": "off", "b": "chat_template_kwargs"}


def test_services_are_frozen_and_models_is_the_pool():
    services = services_for(backend("a"))
    assert services.models is services.pool
    with pytest.raises(AttributeError):
        services.think_control = "off"  # type: ignore[misc]


def test_one_deadline_per_request_from_request_timeout():
    services = services_for(backend("a"), request_timeout_s=42.0)
    with app.test_request_context("/"):
        first = services.deadline()
        assert services.deadline() is first
        assert 41.0 < first.remaining_s() <= 42.0
    with app.test_request_context("/"):
        assert services.deadline() is not first


# -- resolve_model and call_backend, against the in-process demo backend ---------------------------
@pytest.fixture()
def demo() -> Services:
    s = Settings(demo_token_delay_s=0.0, model_mapping={"alias": "demo"})
    pool = BackendPool(s, transport_for=lambda b: demo_transport(s))
    return Services(settings=s, modelmap=ModelMap(dict(s.model_mapping)), started_at="x", pool=pool)


def test_demo_settings_point_at_the_demo_host(demo):
    assert demo.settings.demo_backend and demo.pool.backends[0].base_url == DEMO_BACKEND_URL


def test_resolve_model_maps_aliases_and_refuses_names_the_backend_does_not_list(demo):
    with app.test_request_context("/"):
        assert resolve_model("alias", demo) == "demo"
        assert resolve_model("demo:latest", demo) == "demo"
        assert resolve_model("demo-embed", demo) == "demo-embed"
        with pytest.raises(ModelNotFound, match="^model 'nope' not found$"):
            resolve_model("nope", demo)


def test_call_backend_answers_and_names_the_backend(demo):
    body = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
    with app.test_request_context("/"):
        resp = call_backend(demo, "/chat/completions", body, "demo", stream=False)
    assert resp.status == 200 and resp.backend == "default"
    assert resp.json()["choices"][0]["message"]["content"] == "Hello from the bridge demo backend! You said: hi"


def test_call_backend_turns_the_backends_unknown_model_into_our_404(demo):
    body = {"model": "ghost", "messages": [{"role": "user", "content": "hi"}]}
    with app.test_request_context("/"), pytest.raises(ModelNotFound) as info:
        call_backend(demo, "/chat/completions", body, "ghost:latest", stream=False)
    assert info.value.message == "model 'ghost:latest' not found"


def test_call_backend_passes_other_backend_errors_on(demo):
    body = {"model": "demo-embed", "input": 5}
    with app.test_request_context("/"), pytest.raises(UpstreamHTTPError) as info:
        call_backend(demo, "/embeddings", body, "demo-embed", stream=False)
    assert info.value.status == 400 and "input must be a string or a list of strings" in info.value.message
