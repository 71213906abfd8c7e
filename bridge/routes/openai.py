"""OpenAI pass-through on the same port (``/v1/*``): model mapping applied, bodies relayed as sent."""

from __future__ import annotations

import json

from flask import Blueprint, Response, jsonify

from ..errors import ClientRequestError, ModelNotFound
from ..metrics.instrument import observation
from ..streaming import record_usage, sse_passthrough
from ..translate import catalog
from .common import Services, call_backend, read_json_object, request_id, require_model_name, resolve_model

__all__ = ["openai_blueprint"]

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def openai_blueprint(services: Services) -> Blueprint:
    bp = Blueprint("openai", __name__)

    @bp.get("/v1/models")
    def models():
        body = services.models.fetch(request_id(), services.deadline())
        return jsonify(catalog.openai_models_response(body, services.modelmap))

    @bp.get("/v1/models/<path:model_id>")
    def model(model_id: str):
        body = services.models.fetch(request_id(), services.deadline())
        listing = catalog.openai_models_response(body, services.modelmap)
        for item in listing.get("data", []):
            if item.get("id") == model_id:
                return jsonify(item)
        raise ModelNotFound(model_id)

    def relay(path: str):
        def view():
            body = read_json_object()
            requested = require_model_name(body, services)
            obs = observation()
            obs.model = requested  # labelled (bounded) when recorded
            resolve_model(requested, services)
            forwarded = services.modelmap.to_backend_passthrough({**body, "model": requested})
            stream = body.get("stream", False)
            if not isinstance(stream, bool):
                raise ClientRequestError("'stream' must be a boolean")
            resp = call_backend(services, path, forwarded, requested, stream=stream)
            if stream:
                return Response(obs.stream_wrap(sse_passthrough(services.upstream, resp, obs)),
                                mimetype="text/event-stream", headers=_SSE_HEADERS)
            _note_usage(resp.content, obs)
            return Response(resp.content, status=resp.status_code,
                            content_type=resp.headers.get("Content-Type", "application/json"))

        view.__name__ = "relay_" + path.strip("/").replace("/", "_")
        return view

    for path in ("/chat/completions", "/completions", "/embeddings"):
        bp.add_url_rule(f"/v1{path}", view_func=relay(path), methods=["POST"])
    return bp


def _note_usage(content: bytes, obs) -> None:
    try:
        record_usage(json.loads(content), obs)
    except ValueError:  # a body that is not JSON is relayed as it is, uncounted
        pass
