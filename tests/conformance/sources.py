"""Where each Ollama response field the bridge sends comes from, and the scenario that observes them.

``SOURCES`` is the hand-kept part: (route, field path) -> source. The field list itself is never
hand-written: ``observe`` sends a fixed set of real requests through a running bridge and
flattens every response it gets, so a field someone adds (or drops) shows up in (or leaves)
the table by itself; ``render`` writes the table. Source kinds used in the text:

- **backend**: a field of the backend's answer (its /v1/models entry, usage, choices ...)
- **mapping**: the mapping file's declaration for the model (MODEL_MAPPING / MODEL_MAPPING_FILE)
- **measurement**: the bridge's own clock
- **estimate**: worked out from other facts (the model id, parameter count x bits per weight)
- **config**: a setting or fixed default of the bridge
- **request**: echoed from the client's request
"""

from __future__ import annotations

import json
from collections import defaultdict

import requests

# The fake backend's /v1/models entry for m1 (llama-server shape) and the mapping file of the run.
LLAMACPP_META = {"vocab_type": 2, "n_vocab": 152064, "n_ctx_train": 32768, "n_ctx": 8192, "n_embd": 3584,
                 "n_params": 7615616512, "size": 4677120000, "ftype": "Q4_K - Medium"}
MAPPING = {"big": {"model": "m2", "context_length": 65536, "parameter_size": "70B", "quantization_level": "Q4_K_M",
                   "family": "llama", "capabilities": ["completion", "tools", "vision"], "license": "Apache-2.0"}}
ENV = {"MODEL_MAPPING": json.dumps(MAPPING), "MODELS_CACHE_TTL": "0", "MAX_RETRIES": "0"}

_FACTS = "mapping, else backend, else estimate, else default"
_DETAILS = {
    "details": "bridge: Ollama's details object",
    "details.parent_model": "config: \"\" (models are not derived)",
    "details.format": "config: \"gguf\"",
    "details.family": "mapping `family`, else estimate: a known family word in the model id, else its first word",
    "details.families": "same as details.family, as a one-element list",
    "details.families[]": "the family",
    "details.parameter_size": "mapping `parameter_size`, else backend meta.n_params (llama.cpp, Ollama's rendering "
                              "e.g. 7.6B), else estimate: a size token of the model id (8B, 270M), else \"\"",
    "details.quantization_level": "mapping `quantization_level`, else backend meta.ftype (llama.cpp), else estimate: "
                                  "a quantisation token of the model id (Q4_K_M, AWQ, BF16), else \"\"",
}
_CHAT_COMMON = {
    "model": "request: the model name the client sent",
    "created_at": "measurement: bridge clock, RFC 3339 UTC",
    "done": "bridge: false on partial chunks, true on the last",
    "done_reason": "backend finish_reason (stop, length; tool_calls -> stop); load/unload for load requests",
    "total_duration": "measurement: request received -> answer complete (ns); at least the parts below",
    "load_duration": "measurement: request received -> sent to the backend (ns)",
    "prompt_eval_duration": "backend timings.prompt_ms (llama.cpp), else measurement: sent -> first token or "
                            "response headers (ns)",
    "eval_duration": "backend timings.predicted_ms (llama.cpp), else measurement: first token -> end (ns)",
    "prompt_eval_count": "backend usage.prompt_tokens, else timings.prompt_n, else estimate from the prompt text",
    "eval_count": "backend usage.completion_tokens, else timings.predicted_n, else estimate from the output text",
    "logprobs": "backend choices[].logprobs, translated to Ollama's shape",
    "logprobs[]": "one per output token",
    "logprobs[].token": "backend logprobs token",
    "logprobs[].logprob": "backend logprobs logprob",
    "logprobs[].bytes": "backend logprobs bytes",
    "logprobs[].bytes[]": "a UTF-8 byte of the token",
    "logprobs[].top_logprobs": "backend top_logprobs",
    "logprobs[].top_logprobs[]": "backend top_logprobs entry",
    "logprobs[].top_logprobs[].token": "backend top_logprobs token",
    "logprobs[].top_logprobs[].logprob": "backend top_logprobs logprob",
    "logprobs[].top_logprobs[].bytes": "backend top_logprobs bytes",
    "logprobs[].top_logprobs[].bytes[]": "a UTF-8 byte of the token",
}
_CHAT = {
    **_CHAT_COMMON,
    "message": "bridge: the assistant message",
    "message.role": "config: \"assistant\"",
    "message.content": "backend choices[0].message.content / delta.content",
    "message.thinking": "backend reasoning_content / reasoning (dropped when the client sent think false)",
    "message.tool_calls": "backend tool_calls (streamed fragments merged, arguments parsed to objects)",
}
_GENERATE = {
    **_CHAT_COMMON,
    "response": "backend choices[0].message.content / text / delta",
    "thinking": "backend reasoning_content / reasoning (dropped when the client sent think false)",
    "context": "config: [] (the backend keeps no token context to hand back)",
}

_LOAD = {
    "done_reason": "bridge: load, or unload for keep_alive 0 (no inference; the model is checked with "
                   "the backend's listing)",
    "message.content": "config: \"\" (no inference)",
    "response": "config: \"\" (no inference)",
}

SOURCES: dict[str, dict[str, str]] = {
    "GET /api/version": {
        "version": "config: OLLAMA_VERSION (default in bridge/config.py)",
    },
    "GET /api/tags": {
        "models": "backend /v1/models data[] ids plus live mapping aliases",
        "models[]": "one per name",
        "models[].name": "backend id or mapping alias, with :latest added when untagged",
        "models[].model": "same as name",
        "models[].modified_at": "backend entry `created` (unix s or ms), else the bridge's start time",
        "models[].size": "mapping `size`, else backend meta.size (llama.cpp), else estimate: parameters x bits "
                         "per weight of the quantisation (16 when unknown), else 0",
        "models[].digest": "estimate: sha256 of the name without :latest (stable, 64 hex)",
        "models[].capabilities": "mapping `capabilities`, else backend hints (OpenRouter supported_parameters / "
                                 "architecture, Mistral capabilities, llama.cpp multimodal, type embedding), "
                                 "else the id (embedding names), else completion + tools",
        "models[].capabilities[]": "a capability name",
        **{f"models[].{k}": v for k, v in _DETAILS.items()},
    },
    "POST /api/show": {
        "modelfile": "estimate: FROM <backend id>",
        "parameters": "config: \"\"",
        "template": "estimate: a Go template built from the capabilities (.Tools when tools, .Thinking "
                    "when thinking, .Suffix when insert; {{ .Prompt }} for embedding models)",
        "license": "mapping `license`, else \"\"",
        "capabilities": "as in /api/tags",
        "capabilities[]": "a capability name",
        "modified_at": "backend entry `created`, else the bridge's start time",
        "model_info": "bridge: GGUF-style keys",
        "model_info.general.architecture": "same as details.family",
        "model_info.general.basename": "request: the name the client asked for",
        "model_info.general.parameter_count": "mapping `parameter_count`, else backend meta.n_params, else "
                                              "estimate from parameter_size / the model id, else 0",
        "model_info.<family>.context_length": "mapping `context_length`, else backend max_model_len (vLLM), "
                                              "meta.n_ctx (llama.cpp per slot), loaded_context_length, "
                                              "context_length (OpenRouter), meta.n_ctx_train, "
                                              "top_provider.context_length, context_window, max_context_length; "
                                              "else config 4096",
        "model_info.<family>.embedding_length": "mapping `embedding_length`, else backend meta.n_embd; only when known",
        "model_info.<family>.vocab_size": "backend meta.n_vocab (llama.cpp); only when known",
        **_DETAILS,
    },
    "GET /api/ps": {
        "models": "the instance-wide table of loaded models (ps.table in the metrics directory)",
        "models[]": "one per Ollama display name, longest time left first",
        "models[].name": "request: the loaded name as Ollama displays it (llama3 -> llama3:latest)",
        "models[].model": "same as name",
        "models[].size": "as size in /api/tags",
        "models[].size_vram": "mapping `size_vram`, else estimate: = size (the backend holds the model on its "
                              "accelerator as far as the bridge can tell)",
        "models[].digest": "as in /api/tags",
        "models[].expires_at": "measurement: last request + its keep_alive (default 5m; negative: now + 292 years)",
        "models[].context_length": "as model_info.<family>.context_length in /api/show",
        **{f"models[].{k}": v for k, v in _DETAILS.items()},
    },
    "POST /api/chat (stream false)": _CHAT,
    "POST /api/chat (stream, chunk)": _CHAT,
    "POST /api/chat (stream, final)": _CHAT,
    "POST /api/chat (load)": {**_CHAT, **_LOAD},
    "POST /api/generate (stream false)": _GENERATE,
    "POST /api/generate (stream, chunk)": _GENERATE,
    "POST /api/generate (stream, final)": _GENERATE,
    "POST /api/generate (load)": {**_GENERATE, **_LOAD},
    "POST /api/embed": {
        "model": "request: the model name the client sent",
        "embeddings": "backend data[].embedding, in input order",
        "embeddings[]": "one per input",
        "embeddings[][]": "a float",
        "total_duration": "measurement: request received -> answer (ns)",
        "load_duration": "measurement: request received -> sent to the backend (ns)",
        "prompt_eval_count": "backend usage.prompt_tokens",
    },
    "POST /api/embeddings": {
        "embedding": "backend data[0].embedding",
        "embedding[]": "a float",
    },
}
UNRECORDED = "(not recorded: add it to tests/conformance/sources.py)"


def _type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def flatten(value: object, path: str, out: dict[str, set[str]]) -> None:
    """Every field path of a JSON value with the types seen there (model_info keys named generically)."""
    if path:
        out[path].add(_type(value))
    if isinstance(value, dict):
        if path.endswith("model_info"):
            arch = value.get("general.architecture")
            for key, item in value.items():
                name = f"<family>.{key[len(arch) + 1:]}" if isinstance(arch, str) and key.startswith(f"{arch}.") \
                    else key
                flatten(item, f"{path}.{name}", out)
            return
        for key, item in value.items():
            flatten(item, f"{path}.{key}" if path else key, out)
    elif isinstance(value, list):
        for item in value:
            flatten(item, f"{path}[]", out)


def observe(url: str, backend) -> dict[str, dict[str, set[str]]]:
    """Send the scenario's requests to the bridge at ``url``; {route label: {field path: types}}."""
    backend.reset()
    backend.script(model_meta={"m1": {"owned_by": "llamacpp", "meta": LLAMACPP_META}},
                   reasoning=["Let me", " think."], logprobs=True)
    seen: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    session = requests.Session()

    def get(label: str, path: str) -> None:
        resp = session.get(url + path, timeout=10)
        resp.raise_for_status()
        flatten(resp.json(), "", seen[label])

    def post(label: str, path: str, body: dict) -> None:
        resp = session.post(url + path, json=body, timeout=10)
        resp.raise_for_status()
        if body.get("stream") is False:
            flatten(resp.json(), "", seen[label])
            return
        lines = [json.loads(line) for line in resp.text.splitlines() if line.strip()]
        for line in lines[:-1]:
            flatten(line, "", seen[label.replace("(stream)", "(stream, chunk)")])
        flatten(lines[-1], "", seen[label.replace("(stream)", "(stream, final)")])

    user = [{"role": "user", "content": "hi"}]
    try:
        get("GET /api/version", "/api/version")
        get("GET /api/tags", "/api/tags")
        for name in ("m1", "big", "e1"):
            post("POST /api/show", "/api/show", {"model": name, "stream": False})
        for think in (None, True):
            extra = {"think": think} if think is not None else {}
            post("POST /api/chat (stream false)", "/api/chat",
                 {"model": "m1", "messages": user, "stream": False, "logprobs": True, "top_logprobs": 2, **extra})
            post("POST /api/chat (stream)", "/api/chat",
                 {"model": "m1", "messages": user, "logprobs": True, "top_logprobs": 2, **extra})
            post("POST /api/generate (stream false)", "/api/generate",
                 {"model": "m1", "prompt": "hi", "stream": False, "logprobs": True, "top_logprobs": 2, **extra})
            post("POST /api/generate (stream)", "/api/generate",
                 {"model": "m1", "prompt": "hi", "logprobs": True, "top_logprobs": 2, **extra})
        post("POST /api/chat (load)", "/api/chat", {"model": "big", "messages": [], "stream": False})
        post("POST /api/generate (load)", "/api/generate", {"model": "m1", "stream": False, "keep_alive": "10m"})
        post("POST /api/embed", "/api/embed", {"model": "e1", "input": ["a", "b"], "stream": False})
        post("POST /api/embeddings", "/api/embeddings", {"model": "e1", "prompt": "a", "stream": False})
        get("GET /api/ps", "/api/ps")
    finally:
        session.close()
        backend.reset()
    return {label: dict(fields) for label, fields in seen.items()}


def rows(observed: dict[str, dict[str, set[str]]]) -> list[tuple[str, str, str, str]]:
    """(route, field, types, source) in a stable order: routes as in SOURCES, fields sorted."""
    order = list(SOURCES) + sorted(set(observed) - set(SOURCES))
    out = []
    for label in order:
        for path in sorted(observed.get(label, {})):
            source = SOURCES.get(label, {}).get(path, UNRECORDED)
            out.append((label, path, " | ".join(sorted(observed[label][path])), source))
    return out


def render(observed: dict[str, dict[str, set[str]]]) -> str:
    """The Markdown table (what ``python -m tests.conformance.generate`` writes to fields.md)."""
    lines = [
        "# Ollama response fields the bridge sends, and where each value comes from",
        "",
        "Generated by `.venv/bin/python -m tests.conformance.generate` from real responses of the bridge",
        "(gunicorn, 2 workers) in front of the fake backend scripted as llama-server, with the mapping file",
        f"`{json.dumps(MAPPING)}`.",
        "Do not edit by hand: `tests/conformance/test_fields.py` fails when this file and what the bridge",
        "sends disagree. Sources are kept in `tests/conformance/sources.py`.",
        "",
        "Source kinds: **backend** (the backend's answer), **mapping** (the mapping file), **measurement** (the",
        "bridge's clock), **estimate** (worked out from other facts), **config** (a setting or fixed default),",
        "**request** (echoed from the client).",
        "",
    ]
    current = None
    for label, path, types, source in rows(observed):
        if label != current:
            lines += ["", f"## {label}", "", "| field | type | source |", "|---|---|---|"]
            current = label
        lines.append(f"| `{path}` | {types} | {source.replace('|', '/')} |")
    return "\n".join(lines) + "\n"
