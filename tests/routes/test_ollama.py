"""Route-level behaviour that needs no gunicorn: the Flask test client and the built-in demo backend."""

from __future__ import annotations

import json

from bridge.app import create_app
from bridge.config import Settings


def demo_app():
    app = create_app(Settings.from_env({"DEMO_TOKEN_DELAY": "0", "LOG_LEVEL": "WARNING"}))
    return app, app.extensions["bridge"]


def test_ps_lists_recently_used_models_and_stays_bounded(monkeypatch):
    app, services = demo_app()
    c = app.test_client()
    assert c.post("/api/generate", json={"model": "demo", "prompt": "x", "stream": False}).status_code == 200
    # Named as Ollama displays them (llama3 -> llama3:latest).
    assert [m["name"] for m in c.get("/api/ps").get_json()["models"]] == ["demo:latest"]
    # A backend that cannot list its models lets any name through to it: /api/ps must not grow
    # with every name a client invents.
    monkeypatch.setattr(services.models, "ids", lambda *a, **k: None)
    for i in range(200):
        c.post("/api/generate", json={"model": f"made-up-{i}", "prompt": "x", "stream": False})
    names = [m["name"] for m in c.get("/api/ps").get_json()["models"]]
    # Longest time left first, as Ollama sorts: the latest request leads; the oldest were evicted.
    assert len(names) == 64 and names[0] == "made-up-199:latest" and "demo:latest" not in names


def test_demo_backend_answers_through_the_production_path():
    app, _ = demo_app()
    c = app.test_client()
    version = c.get("/api/version").get_json()
    assert "demo" in version["backend"]
    lines = c.post("/api/chat", json={"model": "demo", "messages": [{"role": "user", "content": "hi there"}]})
    body = lines.get_data().decode().strip().split("\n")
    assert body[-1].startswith('{"model":"demo"') and '"done":true' in body[-1]
    assert "You said: hi there" in "".join(json.loads(b)["message"]["content"] for b in body)
