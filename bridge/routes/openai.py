"""OpenAI pass-through on the same port (``/v1/*``): model mapping applied, bodies relayed as sent."""

from __future__ import annotations

import json

from flask import Blueprint, Response, jsonify

from ..errors import ModelNotFound
from ..metrics.instrument import observation
from ..metrics.observation import Observation
from ..request_ids import request_id
from ..streams import STREAM_HEADERS
from ..streams.openai_relay import openai_relay, usage_of
from ..translate import catalog
from .common import Services, call_backend, resolve_model
from .request_body import read_json_object, require_model_name, stream_flag

__all__ = ["openai_blueprint"]


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
            requested = require_model_name(body, services.settings.default_model)
            obs = observation()
            obs.note_model(requested)  # labelled (bounded) when recorded
            resolve_model(requested, services)
            forwarded = services.modelmap.to_backend_passthrough({**body, "model": requested})
            stream = stream_flag(body, default=False)  # null is false, as OpenAI and Ollama read it
            resp = call_backend(services, path, forwarded, requested, stream=stream)
            if stream:
                return Response(obs.stream_wrap(openai_relay(resp, obs)), mimetype="text/event-stream",
                                headers=STREAM_HEADERS)
            _note_usage(resp.content, obs)
            return Response(resp.content, status=resp.status, content_type=resp.content_type)

        view.__name__ = "relay_" + path.strip("/").replace("/", "_")
        return view

    for path in ("/chat/completions", "/completions", "/embeddings"):
        bp.add_url_rule(f"/v1{path}", view_func=relay(path), methods=["POST"])
    return bp


def _note_usage(content: bytes, obs: Observation) -> None:
    try:
        obs.note_tokens(*usage_of(json.loads(content)))
    except ValueError:  # a body that is not JSON is relayed as it is, uncounted
        pass
