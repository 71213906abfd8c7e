"""Ollama API routes (``/api/*`` and ``/``): parse, translate, one pooled backend call, answer."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from flask import Blueprint, Response, jsonify

from ..errors import NotSupported
from ..metrics.instrument import observation
from ..ndjson import json_bytes, ndjson_line
from ..ps_table import PsTable, parse_keep_alive
from ..request_ids import request_id
from ..streams import STREAM_HEADERS
from ..streams.ollama import ollama_stream
from ..streams.patient import patient_json
from ..translate import catalog, chat, embed, responses
from ..translate.stream import StreamTranslator
from .common import Services, call_backend, now_rfc3339, require_listing, resolve_model
from .params import added_params, call_generation
from .request_body import read_json_object, require_model_name, stream_flag

__all__ = ["ollama_blueprint"]

NDJSON = "application/x-ndjson"


def ollama_blueprint(services: Services) -> Blueprint:
    bp = Blueprint("ollama", __name__)
    # Loaded models for /api/ps, one table for all workers (a file in the metrics directory).
    ps_table = PsTable(services.settings.metrics_dir)

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
        requested = require_model_name(body, services.settings.default_model, keys=("model", "name"))
        # A backend that can't list its models gets its error passed on (5xx) instead of a
        # description of a model that may not exist (the reference invents one for any name).
        require_listing(services)
        backend = resolve_model(requested, services)
        entry = services.models.entry(backend, request_id())
        return jsonify(catalog.show_response(requested, backend, entry, modified_at=services.started_at,
                                             declared=services.modelmap.facts(requested, backend)))

    @bp.get("/api/ps")
    def ps():
        running = ps_table.running()
        # Sizes and context lengths come from the backend's listing (cached); without one the
        # mapping file's facts and estimates still answer.
        listing = services.models.cached(request_id(), services.deadline()) if running else None
        rows = [(e.name, e.backend_id, _expires_rfc3339(e.expires_at)) for e in running]
        return jsonify(catalog.ps_response(rows, catalog.model_entries(listing), services.modelmap))

    @bp.post("/api/pull")
    def pull():
        body = read_json_object()
        requested = require_model_name(body, services.settings.default_model, keys=("model", "name"))
        require_listing(services)  # never report a pull as done for a model we can't see
        backend = resolve_model(requested, services)
        stream = stream_flag(body, default=True)
        if stream:
            progress = catalog.pull_response(True, backend)
            return Response(b"".join(ndjson_line(item) for item in progress), mimetype=NDJSON)
        return jsonify(catalog.pull_response(False, backend))

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
        body = read_json_object()
        requested = require_model_name(body, services.settings.default_model)
        obs = observation()
        obs.note_model(requested)  # labelled (bounded) when recorded
        stream = stream_flag(body, default=True)
        keep_alive = parse_keep_alive(body.get("keep_alive"))  # a wrong type is a 400, as in Ollama
        reason = chat.short_circuit(kind, body)
        if reason is not None:
            return _load(kind, body, requested, reason, keep_alive, stream)
        backend = resolve_model(requested, services)
        ps_table.touch(requested, backend, keep_alive)
        think_control = services.think_control
        if kind == "chat":
            path = "/chat/completions"
            openai_body = chat.chat_request(body, backend, stream=stream, think_control=think_control)
        else:
            endpoint, openai_body = chat.generate_request(body, backend, stream=stream, think_control=think_control)
            path = "/chat/completions" if endpoint == "chat" else "/completions"
        keep_thinking = chat.keeps_thinking(body)
        added = added_params(openai_body, body.get("think"))  # droppable if the backend refuses them
        prompt_estimate = responses.prompt_tokens_estimate(openai_body)  # counts when it reports none
        obs.clock.mark_sent()
        if not stream:
            deadline, rid = services.deadline(), request_id()

            def answer() -> bytes:
                resp = call_generation(services, path, openai_body, requested, stream=False, added=added,
                                       deadline=deadline, rid=rid)
                obs.note_backend(resp.backend)  # also when run in a greenlet (FIRST_BYTE_TIMEOUT)
                data = resp.json()
                # Without the backend's own timings: prompt eval until the response headers, eval the rest.
                timings = obs.clock.ollama_timings(first_ns=resp.headers_received_ns)
                make = responses.chat_response if kind == "chat" else responses.generate_response
                reply = make(data, model=requested, created_at=now_rfc3339(), timings=timings,
                             keep_thinking=keep_thinking, prompt_estimate=prompt_estimate)
                reported_in, reported_out = responses.reported_counts(data)
                # Metrics count what the backend reported, not estimates.
                obs.note_tokens(reported_in, reported_out if reported_out is not None else reply.get("eval_count"))
                return json_bytes(reply)

            return patient_json(answer, first_byte_s=services.settings.first_byte_timeout_s,
                                wrap=obs.stream_wrap, failed=obs.note_outcome)
        resp = call_generation(services, path, openai_body, requested, stream=True, added=added)
        translator = StreamTranslator(kind, model=requested, created_at=now_rfc3339, keep_thinking=keep_thinking,
                                      completions=path == "/completions", prompt_estimate=prompt_estimate)
        return Response(obs.stream_wrap(ollama_stream(resp, translator, obs, obs.clock)), mimetype=NDJSON,
                        headers=STREAM_HEADERS)

    def _load(kind: str, body: dict, requested: str, reason: str, keep_alive: float | None, stream: bool):
        """A load or unload request (no prompt / no messages): checked like any other request (field
        types, options, the model known to the backend), then answered without inference."""
        backend = resolve_model(requested, services)  # unknown model: 404, as Ollama answers
        think_control = services.think_control
        if kind == "chat":  # the same translation as a real request, its result unused: same 400s
            chat.chat_request({**body, "messages": [{"role": "user", "content": ""}]}, backend, stream=stream,
                              think_control=think_control)
        else:
            chat.generate_request({**body, "prompt": ""}, backend, stream=stream, think_control=think_control)
        if reason == "unload":
            ps_table.remove(requested)
        else:
            ps_table.touch(requested, backend, keep_alive)
        reply = chat.load_response(kind, model=requested, created_at=now_rfc3339(), done_reason=reason)
        return Response(ndjson_line(reply), mimetype=NDJSON) if stream else jsonify(reply)

    @bp.post("/api/embed")
    def embed_route():
        body = read_json_object()
        requested = require_model_name(body, services.settings.default_model)
        obs = observation()
        obs.note_model(requested)  # labelled (bounded) when recorded
        keep_alive = parse_keep_alive(body.get("keep_alive"))
        backend = resolve_model(requested, services)
        openai_body = embed.embed_request(body, backend)
        ps_table.touch(requested, backend, keep_alive)  # Ollama loads it even for an empty input
        if openai_body is None:
            return jsonify(embed.embed_empty_response(requested))
        obs.clock.mark_sent()
        data = _call_json("/embeddings", openai_body, requested)
        timings = obs.clock.ollama_timings()
        reply = embed.embed_response(data, model=requested, total_ns=timings.total_ns, load_ns=timings.load_ns)
        obs.note_tokens(reply.get("prompt_eval_count"), None)
        return Response(json_bytes(reply), mimetype="application/json")

    @bp.post("/api/embeddings")
    def embeddings_route():
        body = read_json_object()
        requested = require_model_name(body, services.settings.default_model)
        observation().note_model(requested)  # labelled (bounded) when recorded
        keep_alive = parse_keep_alive(body.get("keep_alive"))
        backend = resolve_model(requested, services)
        openai_body = embed.embeddings_request(body, backend)
        ps_table.touch(requested, backend, keep_alive)
        if openai_body is None:
            return jsonify({"embedding": []})
        data = _call_json("/embeddings", openai_body, requested)
        return Response(json_bytes(embed.embeddings_response(data)), mimetype="application/json")

    def _call_json(path: str, openai_body: dict, requested: str) -> dict:
        return call_backend(services, path, openai_body, requested, stream=False).json()

    return bp


def _expires_rfc3339(expires_at: float) -> str:
    """RFC 3339 UTC; "forever" as Ollama writes it: now plus Go's longest duration (about 292 years)."""
    if expires_at == float("inf"):
        expires_at = time.time() + (2**63 - 1) / 1e9
    return datetime.fromtimestamp(expires_at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
