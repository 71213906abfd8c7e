"""``ollama.AsyncClient`` against the running bridge: cases 8, 9, 13 (= case 42) and a few more.

The async client shares the sync client's models but not its transport (httpx.AsyncClient, async
line iteration), so streaming, error surfacing and the mid-stream error line are checked again.
"""

from __future__ import annotations

import asyncio
import re

import ollama
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(10, func_only=True)]

TEXT = "Hello from fake backend."
RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
USER = [{"role": "user", "content": "hi"}]
FN_TOOL = {"type": "function", "function": {
    "name": "fn", "description": "adds", "parameters": {
        "type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}}


def run(bridge, body):
    """Run ``body(client)`` on a fresh event loop with an AsyncClient that is closed afterwards."""
    async def main():
        client = ollama.AsyncClient(host=bridge.url, timeout=10)
        try:
            return await body(client)
        finally:
            await client.close()
    return asyncio.run(main())


def test_42_case_08_chat_non_stream(bridge, backend):
    reply = run(bridge, lambda c: c.chat("m1", messages=USER))
    assert reply.done is True and reply.done_reason == "stop"
    assert reply.message.role == "assistant" and reply.message.content == TEXT
    assert RFC3339_Z.match(reply.created_at)
    assert reply.prompt_eval_count == 7 and reply.eval_count == 4
    assert reply.total_duration >= reply.eval_duration > 0
    sent = backend.requests_to("/v1/chat/completions")[-1].json
    assert sent["model"] == "m1" and sent["stream"] is False


def test_42_case_09_chat_stream(bridge, backend):
    async def body(c):
        return [chunk async for chunk in await c.chat("m1", messages=USER, stream=True)]

    chunks = run(bridge, body)
    assert all(ch.done is False for ch in chunks[:-1])
    last = chunks[-1]
    assert last.done is True and last.done_reason == "stop" and last.eval_count == 4
    assert "".join(ch.message.content or "" for ch in chunks) == TEXT
    sent = backend.requests_to("/v1/chat/completions")[-1].json
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_42_case_13_backend_drops_mid_stream(bridge, backend):
    backend.script(tokens=["a", "b", "c", "d", "e"], fault="close_mid_stream", fault_after_tokens=3)
    got = []

    async def body(c):
        async for chunk in await c.chat("m1", messages=USER, stream=True):
            got.append(chunk.message.content)

    with pytest.raises(ollama.ResponseError) as err:
        run(bridge, body)
    assert got == ["a", "b", "c"]
    assert err.value.status_code == -1 and err.value.error


def test_42_case_14_error_event_mid_stream(bridge, backend):
    backend.script(tokens=["a", "b", "c", "d"], fault="error_event", fault_after_tokens=2)
    got = []

    async def body(c):
        async for chunk in await c.generate("m1", "x", stream=True):
            got.append(chunk.response)

    with pytest.raises(ollama.ResponseError) as err:
        run(bridge, body)
    assert got == ["a", "b"] and err.value.status_code == -1 and err.value.error == "boom"


def test_42_case_11_unknown_model_stream_is_404(bridge, backend):
    async def body(c):
        async for _ in await c.chat("nope", messages=USER, stream=True):
            pass

    with pytest.raises(ollama.ResponseError) as err:
        run(bridge, body)
    assert err.value.status_code == 404 and "not found" in err.value.error


def test_42_case_20_streamed_tool_calls(bridge, backend):
    backend.script(fragments=4, tool_calls=[
        {"id": "call_a", "name": "fn", "arguments": '{"a": 1}'},
        {"id": "call_b", "name": "fn", "arguments": '{"a": 2}'}])

    async def body(c):
        return [chunk async for chunk in await c.chat("m1", messages=USER, tools=[FN_TOOL], stream=True)]

    chunks = run(bridge, body)
    carriers = [ch for ch in chunks if ch.message.tool_calls]
    assert len(carriers) == 1
    assert [t.function.arguments for t in carriers[0].message.tool_calls] == [{"a": 1}, {"a": 2}]
    assert chunks[-1].done is True


def test_42_concurrent_streams_on_one_client(bridge, backend):
    """Many interleaved streams through the 2 gevent workers, each complete and separate."""
    backend.script(tokens=[f"t{i} " for i in range(5)], delay_s=0.02)

    async def one(c, n):
        chunks = [ch async for ch in await c.generate("m1", f"p{n}", stream=True)]
        return "".join(ch.response for ch in chunks), chunks[-1].done

    async def body(c):
        return await asyncio.gather(*(one(c, n) for n in range(12)))

    results = run(bridge, body)
    assert results == [("t0 t1 t2 t3 t4 ", True)] * 12
    prompts = sorted(r.json["messages"][-1]["content"] for r in backend.requests_to("/v1/chat/completions"))
    assert prompts == sorted(f"p{n}" for n in range(12))


def test_42_embed_list_show_and_load(bridge, backend):
    async def body(c):
        return (await c.embed("e1", input=["a", "b"]), await c.list(), await c.show("alias-1"),
                await c.generate("m1"), await c.ps())

    embedded, listed, shown, loaded, ps = run(bridge, body)
    assert len(embedded.embeddings) == 2
    assert "alias-1:latest" in [m.model for m in listed.models]
    assert "completion" in shown.capabilities
    assert loaded.done_reason == "load"
    assert isinstance(ps.models, list)
