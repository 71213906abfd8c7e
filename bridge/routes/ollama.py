"""Ollama API routes (``/api/*`` and ``/``): parse, translate, one pooled backend call, answer."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from flask import Blueprint, Response, jsonify

from ..errors import ClientRequestError, NotSupported
from ..metrics.instrument import observation
from ..ndjson import json_bytes, ndjson_line
from ..streaming import StreamClock, ndjson_stream, patient_json
from ..translate import catalog, chat, embed, responses
from ..translate.stream import StreamTranslator
from ..upstream import json_object
from .common import (
    Services,
    call_backend,
    now_rfc3339,
    read_json_object,
    request_id,
    require_listing,
    require_model_name,
    resolve_model,
)

__all__ = ["ollama_blueprint"]

NDJSON = "application/x-ndjson"
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_PS_KEEP_S = 300  # how long a used model shows in /api/ps (Ollama's default keep_alive)
_PS_MAX_MODELS = 64  # names come from clients: keep the list bounded


def ollama_blueprint(services: Services) -> Blueprint:
    bp = Blueprint("ollama", __name__)
    recent_models: dict[str, tuple[str, float]] = {}  # requested name -> (backend id, last use)

    @bp.route("/", methods=["GET", "HEAD"])
    def root():
        return Response("Ollama is running", mimetype="text/plain")

    @bp.get("/api/version")
    def version():
        body = {"version": services.settings.ollama_version}
        if services.settings.demo_backend:
            body["backend"] = "demo (built-in; set OPENAI_API_BASE_URL to use a real backend)"
        return jsonify(body)

    @bp.get("/api/tags")
    def tags():
        body = services.models.fetch(request_id(), services.deadline())
        return jsonify(catalog.tags_response(body, services.modelmap, modified_at=services.started_at))

    @bp.post("/api/show")
    def show():
        body = read_json_object()
        requested = require_model_name(body, services, keys=("model", "name"))
        # A backend that can't list its models gets its error passed on (5xx) instead of a
        # description of a model that may not exist (the reference invents one for any name).
        require_listing(services)
        backend = resolve_model(requested, services)
        entry = services.models.entry(backend, request_id())
        return jsonify(catalog.show_response(requested, backend, entry, modified_at=services.started_at))

    @bp.get("/api/ps")
    def ps():
        now = time.time()
        running = []
        for name, (backend, used_at) in list(recent_models.items()):
            if now - used_at > _PS_KEEP_S:
                recent_models.pop(name, None)
                continue
            expires = datetime.fromtimestamp(used_at + _PS_KEEP_S, timezone.utc).isoformat()
            running.append((name, backend, expires))
        return jsonify(catalog.ps_response(running))

    @bp.post("/api/pull")
    def pull():
        body = read_json_object()
        requested = require_model_name(body, services, keys=("model", "name"))
        require_listing(services)  # never report a pull as done for a model we can't see
        backend = resolve_model(requested, services)
        stream = _stream_flag(body)
        result = catalog.pull_response(stream, backend)
        if stream:
            return Response(b"".join(ndjson_line(item) for item in result), mimetype=NDJSON)
        return jsonify(result)

    def not_supported(action: str):
        def view(**_):
            raise NotSupported(f"{action} is not supported: models are managed by the backend, not by the bridge")
        view.__name__ = f"not_supported_{action}"
        return view

    bp.add_url_rule("/api/push", view_func=not_supported("push"), methods=["POST"])
    bp.add_url_rule("/api/create", view_func=not_supported("create"), methods=["POST"])
    bp.add_url_rule("/api/copy", view_func=not_supported("copy"), methods=["POST"])
    bp.add_url_rule("/api/delete", view_func=not_supported("delete"), methods=["DELETE"])
    bp.add_url_rule("/api/blobs/<digest>", view_func=not_supported("blobs"), methods=["POST"])

    @bp.route("/api/blobs/<digest>", methods=["HEAD"])
    def blob_exists(digest: str):
        return Response(status=404)

    @bp.post("/api/chat")
    def chat_route():
        return _complete("chat")

    @bp.post("/api/generate")
    def generate_route():
        return _complete("generate")

    def _complete(kind: str):
        started_ns = time.monotonic_ns()
        body = read_json_object()
        requested = require_model_name(body, services)
        obs = observation()
        obs.model = requested  # labelled (bounded) when recorded
        stream = _stream_flag(body)
        reason = chat.short_circuit(kind, body)
        if reason is not None:
            reply = chat.load_response(kind, model=requested, created_at=now_rfc3339(), done_reason=reason)
            return Response(ndjson_line(reply), mimetype=NDJSON) if stream else jsonify(reply)
        backend = resolve_model(requested, services)
        note_recent(requested, backend)
        think_control = services.settings.think_control
        if kind == "chat":
            path = "/chat/completions"
            openai_body = chat.chat_request(body, backend, stream=stream, think_control=think_control)
        else:
            endpoint, openai_body = chat.generate_request(body, backend, stream=stream, think_control=think_control)
            path = "/chat/completions" if endpoint == "chat" else "/completions"
        keep_thinking = chat.keeps_thinking(body)
        sent_ns = time.monotonic_ns()
        if not stream:
            deadline, rid = services.deadline(), request_id()

            def answer() -> bytes:
                resp = call_backend(services, path, openai_body, requested, stream=False, deadline=deadline, rid=rid)
                data = json_object(resp)
                end_ns = time.monotonic_ns()
                timings = responses.Timings(total_ns=end_ns - started_ns, load_ns=sent_ns - started_ns,
                                            prompt_eval_ns=0, eval_ns=max(1, end_ns - sent_ns))
                make = responses.chat_response if kind == "chat" else responses.generate_response
                reply = make(data, model=requested, created_at=now_rfc3339(), timings=timings,
                             keep_thinking=keep_thinking)
                obs.tokens_in = reply.get("prompt_eval_count")
                obs.tokens_out = reply.get("eval_count")
                return json_bytes(reply)

            return patient_json(answer, first_byte_s=services.settings.first_byte_timeout_s, obs=obs)
        resp = call_backend(services, path, openai_body, requested, stream=True)
        translator = StreamTranslator(kind, model=requested, created_at=now_rfc3339, keep_thinking=keep_thinking,
                                      completions=path == "/completions")
        clock = StreamClock(started_ns, sent_ns, time.monotonic_ns())
        body_iter = ndjson_stream(services.upstream, resp, translator, obs, clock)
        return Response(obs.stream_wrap(body_iter), mimetype=NDJSON, headers=STREAM_HEADERS)

    def note_recent(requested: str, backend: str) -> None:
        """Remember a used model for /api/ps (most recent last, bounded)."""
        recent_models.pop(requested, None)
        recent_models[requested] = (backend, time.time())
        if len(recent_models) > _PS_MAX_MODELS:
            del recent_models[next(iter(recent_models))]

    @bp.post("/api/embed")
    def embed_route():
        started_ns = time.monotonic_ns()
        body = read_json_object()
        requested = require_model_name(body, services)
        observation().model = requested  # labelled (bounded) when recorded
        backend = resolve_model(requested, services)
        openai_body = embed.embed_request(body, backend)
        if openai_body is None:
            return jsonify(embed.embed_empty_response(requested))
        sent_ns = time.monotonic_ns()
        data = _call_json("/embeddings", openai_body, requested)
        end_ns = time.monotonic_ns()
        reply = embed.embed_response(data, model=requested, total_ns=end_ns - started_ns,
                                     load_ns=sent_ns - started_ns)
        observation().tokens_in = reply.get("prompt_eval_count")
        return Response(json_bytes(reply), mimetype="application/json")

    @bp.post("/api/embeddings")
    def embeddings_route():
        body = read_json_object()
        requested = require_model_name(body, services)
        observation().model = requested  # labelled (bounded) when recorded
        backend = resolve_model(requested, services)
        openai_body = embed.embeddings_request(body, backend)
        if openai_body is None:
            return jsonify({"embedding": []})
        data = _call_json("/embeddings", openai_body, requested)
        return Response(json_bytes(embed.embeddings_response(data)), mimetype="application/json")

    def _call_json(path: str, openai_body: dict, requested: str) -> dict:
        return json_object(call_backend(services, path, openai_body, requested, stream=False))

    return bp


def _stream_flag(body: dict) -> bool:
    """Ollama streams unless the client says ``"stream": false`` (absent means true)."""
    value = body.get("stream", True)
    if value is None:
        return True
    if not isinstance(value, bool):
        raise ClientRequestError("'stream' must be true or false")
    return value
