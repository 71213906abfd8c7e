"""ollama-js (the npm ``ollama`` package) against the running bridge: case 44 and a tool round trip.

``tests/js/package.json`` pins the package; it is installed with ``npm ci`` into a cache directory
outside the repository (keyed by the lock file), so the working tree stays clean and later runs reuse
it. Without node/npm or registry access the tests are skipped with the reason.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(15, func_only=True)]

JS_DIR = Path(__file__).resolve().parents[1] / "js"
TEXT = "Hello from fake backend."


@pytest.fixture(scope="module")
def js_dir() -> Path:
    """A directory holding client.mjs and an installed node_modules/ollama."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node/npm not installed: ollama-js cases need them")
    lock = (JS_DIR / "package-lock.json").read_bytes()
    key = hashlib.sha256((JS_DIR / "package.json").read_bytes() + lock).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / f"bridge-ollama-js-{key}"
    if not (cache / "node_modules" / "ollama" / "package.json").exists():
        cache.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(JS_DIR / name, cache / name)
        try:
            done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"], cwd=cache,
                                  capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            pytest.skip("npm ci of ollama-js timed out (no registry access?)")
        if done.returncode != 0:
            pytest.skip(f"npm ci of ollama-js failed (no registry access?): {done.stderr.strip()[-300:]}")
    shutil.copy(JS_DIR / "client.mjs", cache / "client.mjs")
    return cache


def run_js(js_dir: Path, scenario: str, bridge, *extra: str) -> dict:
    done = subprocess.run(["node", "client.mjs", scenario, bridge.url, *extra], cwd=js_dir, capture_output=True,
                          text=True, timeout=12)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_44_chat_stream_completes(js_dir, bridge, backend):
    result = run_js(js_dir, "chat_stream", bridge)
    assert result["ok"], result
    chunks = result["chunks"]
    assert [c["done"] for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert "".join(c["message"]["content"] for c in chunks) == TEXT
    assert chunks[-1]["done_reason"] == "stop" and chunks[-1]["eval_count"] == 4
    assert backend.requests_to("/v1/chat/completions")[-1].json["stream"] is True


def test_44_pull_stream_completes(js_dir, bridge, backend):
    result = run_js(js_dir, "pull_stream", bridge)
    assert result["ok"], result
    assert result["statuses"][-1] == "success" and result["single"] == "success"


def test_44_tool_round_trip(js_dir, bridge, backend):
    backend.script(tool_calls=[{"id": "call_js", "name": "fn", "arguments": '{"a": 41}'}])
    first = run_js(js_dir, "tool_first", bridge)
    assert first["ok"], first
    message = first["first"]["message"]
    assert message["tool_calls"][0]["function"] == {"index": 0, "name": "fn", "arguments": {"a": 41}}
    assert first["first"]["done_reason"] == "stop"
    assert backend.requests_to("/v1/chat/completions")[-1].json["tools"][0]["function"]["name"] == "fn"

    backend.reset()  # the model now answers with text
    second = run_js(js_dir, "tool_second", bridge, json.dumps(message))
    assert second["ok"], second
    assert second["second"]["message"]["content"] == TEXT
    sent = backend.requests_to("/v1/chat/completions")[-1].json["messages"]
    assert sent[1]["role"] == "assistant" and sent[1]["tool_calls"][0]["id"] == "call_js"
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"a": 41}
    assert sent[2] == {"role": "tool", "content": "42", "tool_call_id": "call_js"}


def test_44_streamed_tool_calls(js_dir, bridge, backend):
    backend.script(fragments=4, tool_calls=[{"id": "c1", "name": "fn", "arguments": '{"a": 1}'},
                                            {"id": "c2", "name": "fn", "arguments": '{"a": 2}'}])
    result = run_js(js_dir, "tool_stream", bridge)
    assert result["ok"], result
    carriers = [c for c in result["chunks"] if c["message"].get("tool_calls")]
    assert len(carriers) == 1
    assert [t["function"]["arguments"] for t in carriers[0]["message"]["tool_calls"]] == [{"a": 1}, {"a": 2}]
    assert result["chunks"][-1]["done"] is True


def test_44_mid_stream_error_throws(js_dir, bridge, backend):
    backend.script(tokens=["a", "b", "c", "d"], fault="close_mid_stream", fault_after_tokens=2)
    result = run_js(js_dir, "mid_stream_error", bridge)
    assert result["ok"] is False and result["name"] == "Error"
    assert result["partial"] == ["a", "b"]
    assert result["error"] and "Did not receive done" not in result["error"]


def test_44_unknown_model_is_response_error(js_dir, bridge, backend):
    result = run_js(js_dir, "unknown_model", bridge)
    assert result["ok"] is False and result["name"] == "ResponseError"
    assert result["status"] == 404 and result["error"] == "model 'nope' not found"


def test_44_catalogue(js_dir, bridge, backend):
    result = run_js(js_dir, "catalogue", bridge)
    assert result["ok"], result
    assert tuple(int(p) for p in result["version"].split(".")) >= (0, 6, 4)
    assert {"m1:latest", "alias-1:latest"} <= {m["name"] for m in result["models"]}
    assert all(m["name"] == m["model"] and len(m["digest"]) == 64 for m in result["models"])
    assert "completion" in result["show"]["capabilities"] and "model_info" in result["show"]
    assert isinstance(result["ps"]["models"], list)
    assert len(result["embed"]["embeddings"]) == 2
    assert result["generate"]["model"] == "m1:latest" and result["generate"]["response"] == TEXT
