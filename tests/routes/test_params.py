"""routes/params.py with several backends: what each backend refused is remembered by its name, and
each backend gets only the thinking fields its own think_control wants. Flask test client, two
in-process fake backends serving the same model."""

from __future__ import annotations

import pytest

from bridge.app import create_app
from bridge.backends import Backend
from bridge.config import Settings
from tests.fakes.backend import FakeBackend

CHAT = "/v1/chat/completions"


@pytest.fixture()
def two():
    fakes = [FakeBackend(models=("m1",)).start(), FakeBackend(models=("m1",)).start()]
    yield fakes
    for fake in fakes:
        fake.stop()


def app_for(a: FakeBackend, b: FakeBackend, **a_settings):
    settings = Settings(demo_backend=False, log_level="WARNING", think_control="reasoning_effort",
                        backends=(Backend("a", a.url + "/v1", **a_settings), Backend("b", b.url + "/v1")))
    return create_app(settings).test_client()


def chat(client, **extra) -> dict:
    resp = client.post("/api/chat", json={"model": "m1", "messages": [{"role": "user", "content": "hi"}], **extra})
    assert resp.status_code == 200, resp.get_data()
    return resp


def test_each_backend_gets_the_thinking_fields_of_its_own_think_control(two):
    a, b = two
    client = app_for(a, b, think_control="chat_template_kwargs")
    for _ in range(6):
        chat(client, think=True, stream=False)
    sent_a = [r.json for r in a.requests_to(CHAT)]
    sent_b = [r.json for r in b.requests_to(CHAT)]
    assert len(sent_a) == len(sent_b) == 3  # shared by weight
    assert all(body["chat_template_kwargs"] == {"enable_thinking": True} and "reasoning_effort" not in body
               for body in sent_a)
    assert all(body["reasoning_effort"] == "medium" and "chat_template_kwargs" not in body for body in sent_b)


def test_a_refused_field_is_remembered_for_that_backend_only(two):
    a, b = two
    a.script(reject_params=["stream_options"])
    client = app_for(a, b)
    for _ in range(8):
        lines = chat(client, stream=True).get_data().decode().strip().split("\n")
        assert '"done":true' in lines[-1]
    sent_a = [r.json for r in a.requests_to(CHAT)]
    sent_b = [r.json for r in b.requests_to(CHAT)]
    # The split between a and b depends on in-flight counts (a stream's slot is released when its
    # connection is drained), so it is not asserted; what is remembered, and where, is.
    assert len(sent_a) >= 2 and sent_b, (len(sent_a), len(sent_b))
    assert len(sent_a) + len(sent_b) == 8 + 1  # one retry, on a
    assert "stream_options" in sent_a[0] and "stream_options" not in sent_a[1]  # refused, retried without
    assert sum("stream_options" in body for body in sent_a) == 1  # then left out at once
    assert all("stream_options" in body for body in sent_b)  # b never refused it
