"""Request ids: assigned first, sane inbound ids kept, sent back on every response."""

from __future__ import annotations

from flask import Flask

from bridge.request_ids import install_request_ids, request_id, sanitise_request_id


def test_sane_ids_are_kept_others_replaced():
    assert sanitise_request_id("abc-123.x:y_z") == "abc-123.x:y_z"
    for bad in ("", "a b", "x" * 129, "é", None):
        new = sanitise_request_id(bad)
        assert len(new) == 32 and new != bad
    assert sanitise_request_id(None) != sanitise_request_id(None)


def test_every_response_carries_the_id_even_when_a_hook_answers_first():
    app = Flask("ids")
    install_request_ids(app)

    @app.before_request
    def refuse():
        return ("no", 401)

    resp = app.test_client().get("/", headers={"X-Request-ID": "rid-7"})
    assert resp.status_code == 401 and resp.headers["X-Request-ID"] == "rid-7"


def test_request_id_inside_and_outside_a_request():
    app = Flask("ids")
    install_request_ids(app)
    seen = []

    @app.get("/x")
    def x():
        seen.append(request_id())
        return "ok"

    resp = app.test_client().get("/x")
    assert seen == [resp.headers["X-Request-ID"]] and request_id() is None
