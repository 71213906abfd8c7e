"""/api/embed and legacy /api/embeddings <-> OpenAI /v1/embeddings."""

from __future__ import annotations

import base64
import binascii
import math
import struct

from bridge.errors import ClientRequestError, UpstreamProtocolError
from bridge.translate.json_types import JSON

__all__ = [
    "embed_empty_response",
    "embed_request",
    "embed_response",
    "embeddings_request",
    "embeddings_response",
]


def embed_request(body: JSON, backend_model: str) -> JSON | None:
    """The /v1/embeddings body for /api/embed, or None when the input is empty."""
    _require_object(body)
    inputs = _embed_inputs(body.get("input"))
    truncate = body.get("truncate")
    # Ollama's default (truncate) is what OpenAI backends do anyway; only the type is checked.
    if truncate is not None and not isinstance(truncate, bool):
        raise ClientRequestError("truncate must be a boolean")
    dimensions = _dimensions(body.get("dimensions"))
    if not inputs:
        return None
    out: JSON = {"model": backend_model, "input": inputs, "encoding_format": "float"}
    if dimensions is not None:
        out["dimensions"] = dimensions
    return out


def embed_response(resp: JSON, *, model: str, total_ns: int, load_ns: int) -> JSON:
    """The /api/embed body from a /v1/embeddings response, vectors in input order."""
    out: JSON = {
        "model": model,
        "embeddings": _vectors(resp),
        "total_duration": int(total_ns),
        "load_duration": int(load_ns),
    }
    prompt_tokens = _prompt_tokens(resp)
    if prompt_tokens is not None:
        out["prompt_eval_count"] = prompt_tokens
    return out


def embed_empty_response(model: str) -> JSON:
    """Ollama's answer to an empty input, given without asking the backend."""
    return {"model": model, "embeddings": []}


def embeddings_request(body: JSON, backend_model: str) -> JSON | None:
    """The /v1/embeddings body for legacy /api/embeddings, or None for an empty prompt."""
    _require_object(body)
    prompt = body.get("prompt")
    if prompt is None or prompt == "":
        return None
    if not isinstance(prompt, str):
        raise ClientRequestError("prompt must be a string")
    return {"model": backend_model, "input": [prompt], "encoding_format": "float"}


def embeddings_response(resp: JSON) -> JSON:
    """The legacy {"embedding": [...]} body: the first vector."""
    vectors = _vectors(resp)
    if not vectors:
        raise UpstreamProtocolError("backend returned no embedding")
    return {"embedding": vectors[0]}


def _require_object(body: object) -> None:
    """Request bodies are JSON objects; a list or scalar is the client's mistake."""
    if not isinstance(body, dict):
        raise ClientRequestError("request body must be a JSON object")


def _embed_inputs(value: object) -> list[str]:
    """Ollama's input: a string or a list of strings; missing or empty means no work."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise ClientRequestError("invalid input type")


def _dimensions(value: object) -> int | None:
    """A positive integer, or None when not given."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ClientRequestError("dimensions must be a positive integer")
    return value


def _vectors(resp: object) -> list[list[float]]:
    """Every embedding in resp["data"], sorted by index (position when index is missing)."""
    data = resp.get("data") if isinstance(resp, dict) else None
    if not isinstance(data, list):
        raise UpstreamProtocolError("backend embeddings response has no data list")
    keyed = [(_index(item, pos), _vector(item)) for pos, item in enumerate(data)]
    keyed.sort(key=lambda pair: pair[0])
    return [vector for _, vector in keyed]


def _index(item: object, position: int) -> int:
    """The item's index; its position in the list when the backend left it out."""
    index = item.get("index") if isinstance(item, dict) else None
    if isinstance(index, int) and not isinstance(index, bool):
        return index
    return position


def _vector(item: object) -> list[float]:
    """One embedding as floats: a JSON number list or base64 little-endian float32."""
    embedding = item.get("embedding") if isinstance(item, dict) else None
    if isinstance(embedding, str):
        return _decode_base64(embedding)
    if isinstance(embedding, list) and all(_is_number(x) for x in embedding):
        return [float(x) for x in embedding]
    raise UpstreamProtocolError("backend returned an embedding that is not a list of numbers")


def _decode_base64(text: str) -> list[float]:
    """Backends that ignore encoding_format=float send packed little-endian float32."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UpstreamProtocolError("backend returned an embedding that is not valid base64") from None
    if len(raw) % 4:
        raise UpstreamProtocolError("backend returned a base64 embedding that is not float32 data")
    values = list(struct.unpack(f"<{len(raw) // 4}f", raw))
    # NaN/Infinity cannot be written as JSON, so they are unusable, not merely odd.
    if not all(math.isfinite(v) for v in values):
        raise UpstreamProtocolError("backend returned a non-finite embedding value")
    return values


def _is_number(value: object) -> bool:
    """A finite JSON number (bool is an int in Python but not in JSON)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int beyond float range
        return False


def _prompt_tokens(resp: JSON) -> int | None:
    """usage.prompt_tokens when the backend reported it as an integer."""
    usage = resp.get("usage") if isinstance(resp, dict) else None
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    if isinstance(tokens, bool) or not isinstance(tokens, (int, float)):
        return None
    if isinstance(tokens, float) and not tokens.is_integer():
        return None
    return int(tokens)
