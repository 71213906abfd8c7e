"""LangChain's ``ChatOllama`` / ``OllamaEmbeddings`` (langchain-ollama) against the bridge: case 43.

LangChain always streams ``/api/chat`` (even for ``invoke``), validates the model through
``/api/tags``, fills ``usage_metadata`` only when both token counts arrive, and sends tool results
without ids (the ollama client strips them), so the bridge must link them by name.
"""

from __future__ import annotations

import json

import pytest

langchain_ollama = pytest.importorskip(
    "langchain_ollama", reason="langchain-ollama not installed (pip install langchain-ollama)")
from langchain_core.messages import HumanMessage, ToolMessage  # noqa: E402
from langchain_core.tools import tool  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(10, func_only=True)]

TEXT = "Hello from fake backend."


@tool
def add_one(a: int) -> int:
    """Add one to a number."""
    return a + 1


@pytest.fixture()
def make_chat(bridge):
    """ChatOllama factory; the underlying clients are closed after the test."""
    made = []

    def make(**kwargs):
        kwargs.setdefault("validate_model_on_init", True)
        llm = langchain_ollama.ChatOllama(model=kwargs.pop("model", "m1"), base_url=bridge.url, **kwargs)
        made.append(llm)
        return llm

    yield make
    for llm in made:
        llm._client._client.close()


def chat_sent(backend) -> list[dict]:
    return [r.json for r in backend.requests_to("/v1/chat/completions")]


def test_43_invoke_validates_model_and_fills_usage(make_chat, backend):
    llm = make_chat()
    assert backend.requests_to("/v1/models"), "validate_model_on_init lists models through /api/tags"
    reply = llm.invoke("hi")
    assert reply.content == TEXT
    assert reply.usage_metadata == {"input_tokens": 7, "output_tokens": 4, "total_tokens": 11}
    assert reply.response_metadata["done_reason"] == "stop"
    assert reply.response_metadata["model_name"] == "m1"
    sent = chat_sent(backend)[-1]
    assert sent["stream"] is True and sent["messages"] == [{"role": "user", "content": "hi"}]


def test_43_validate_unknown_model_fails(make_chat, backend):
    with pytest.raises(ValueError, match="not found"):
        make_chat(model="nope")


def test_43_alias_and_latest(make_chat, backend):
    assert make_chat(model="alias-1").invoke("hi").content == TEXT
    # /api/tags lists "m1:latest" as Ollama does, so LangChain's validation accepts both spellings;
    # the tag is echoed back and stripped on the way to the backend.
    reply = make_chat(model="m1:latest").invoke("hi")
    assert reply.content == TEXT and reply.response_metadata["model_name"] == "m1:latest"
    assert [s["model"] for s in chat_sent(backend)] == ["m1", "m1"]


def test_43_stream(make_chat, backend):
    backend.script(tokens=["a", "b", "c"])
    chunks = list(make_chat(temperature=0, num_predict=20).stream("hi"))
    assert "".join(c.content for c in chunks) == "abc"
    total = chunks[0]
    for c in chunks[1:]:
        total += c
    assert total.usage_metadata["input_tokens"] == 7 and total.usage_metadata["output_tokens"] == 3
    sent = chat_sent(backend)[-1]
    assert sent["temperature"] == 0 and sent["max_tokens"] == 20


def test_43_bind_tools_round_trip(make_chat, backend):
    llm = make_chat().bind_tools([add_one])
    backend.script(tool_calls=[{"id": "call_lc", "name": "add_one", "arguments": '{"a": 41}'}])
    question = HumanMessage("add one to 41")
    ai = llm.invoke([question])
    assert len(ai.tool_calls) == 1
    call = ai.tool_calls[0]
    assert call["name"] == "add_one" and call["args"] == {"a": 41}
    tool_def = chat_sent(backend)[-1]["tools"][0]
    assert tool_def["type"] == "function" and tool_def["function"]["name"] == "add_one"

    backend.reset()  # the model answers with text once it has the result
    result = ToolMessage(content=str(add_one.invoke(call["args"])), tool_call_id=call["id"], name="add_one")
    final = llm.invoke([question, ai, result])
    assert final.content == TEXT
    sent = chat_sent(backend)[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    call_id = sent[1]["tool_calls"][0]["id"]
    assert call_id and json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"a": 41}
    assert sent[2] == {"role": "tool", "content": "42", "tool_call_id": call_id}


def test_43_parallel_tool_calls_streamed(make_chat, backend):
    backend.script(fragments=4, tool_calls=[{"id": "c1", "name": "add_one", "arguments": '{"a": 1}'},
                                            {"id": "c2", "name": "add_one", "arguments": '{"a": 2}'}])
    ai = make_chat().bind_tools([add_one]).invoke("two calls")
    assert [c["args"] for c in ai.tool_calls] == [{"a": 1}, {"a": 2}]


def test_43_reasoning(make_chat, backend):
    backend.script(reasoning=["thinking..."])
    reply = make_chat(reasoning=True).invoke("hi")
    assert reply.content == TEXT
    assert reply.additional_kwargs.get("reasoning_content") == "thinking..."
    assert chat_sent(backend)[-1]["reasoning_effort"] == "medium"
    backend.reset()
    backend.script(reasoning=["hidden"])
    reply = make_chat(reasoning=False).invoke("hi")
    assert reply.content == TEXT and "reasoning_content" not in reply.additional_kwargs
    assert chat_sent(backend)[-1]["reasoning_effort"] == "none"


def test_43_structured_output_json_schema(make_chat, backend):
    backend.script(tokens=['{"answer": 42}'])
    schema = {"title": "Answer", "type": "object", "properties": {"answer": {"type": "integer"}},
              "required": ["answer"]}
    structured = make_chat().with_structured_output(schema, method="json_schema")
    assert structured.invoke("q") == {"answer": 42}
    fmt = chat_sent(backend)[-1]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"]["properties"] == schema["properties"]


def test_43_embeddings(bridge, backend):
    emb = langchain_ollama.OllamaEmbeddings(model="e1", base_url=bridge.url, validate_model_on_init=True)
    try:
        vectors = emb.embed_documents(["a", "b"])
        single = emb.embed_query("a")
    finally:
        emb._client._client.close()
    assert len(vectors) == 2 and len(vectors[0]) == 8
    assert single == pytest.approx(vectors[0])
    assert backend.requests_to("/v1/embeddings")[0].json["input"] == ["a", "b"]
