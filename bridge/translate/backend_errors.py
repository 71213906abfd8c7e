"""Turn any backend error body into one human-readable string, and back into OpenAI's error shape."""

from __future__ import annotations

import html
import json
import re

from bridge.translate.json_types import JSON

__all__ = ["backend_error_message", "model_not_found_in_body", "openai_error_body"]

_TEXT_LIMIT = 300
# JSON messages are meant for humans, but some backends echo whole prompts into them.
_MESSAGE_LIMIT = 2000
# Only the head of a page can matter, and bounding it keeps the stripping cheap.
_HTML_SCAN_LIMIT = 64 * 1024
_INVISIBLE = ("script", "style")
# "[^<>]" (not "[^>]") keeps the scan linear on bodies full of unclosed "<".
_TAGS = re.compile(r"<[^<>]*>")
_SPACE = re.compile(r"\s+")

_NOT_JSON = object()
_BLANK_DEPTH = 8

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}

_NOT_FOUND_PATTERNS = (
    re.compile(r"\bmodel\b.*\bnot[ _]found\b", re.IGNORECASE | re.DOTALL),
    re.compile(r"\bdoes not exist\b", re.IGNORECASE),
    re.compile(r"\bunknown model\b", re.IGNORECASE),
    re.compile(r"\bno such model\b", re.IGNORECASE),
    re.compile(r"\bmodel_not_found\b", re.IGNORECASE),
    re.compile(r"\bnot a valid model\b", re.IGNORECASE),
    re.compile(r"\binvalid model\b", re.IGNORECASE),
)


def backend_error_message(status: int, body: bytes, content_type: str | None) -> str:
    """The backend's own message, found by shape; never empty, never raises."""
    fallback = f"backend returned HTTP {status}"
    text = _decode(body)
    data = _parse_json(text)
    if data is not _NOT_JSON:
        found = _from_parsed(data)
        if found:
            return found
        # "{}" or {"error": {}} tells a human nothing; the status does.
        if _is_blank(data):
            return fallback
    return _from_text(text, content_type) or fallback


def openai_error_body(status: int, message: str) -> JSON:
    """OpenAI's error envelope for the /v1 routes."""
    return {
        "error": {
            "message": message or f"HTTP {status}",
            "type": _OPENAI_TYPES.get(status, "api_error"),
            "param": None,
            "code": None,
        }
    }


def model_not_found_in_body(message: str) -> bool:
    """Does the backend's message say the requested model does not exist?"""
    if not isinstance(message, str):
        return False
    return any(p.search(message) for p in _NOT_FOUND_PATTERNS)


def _decode(body: object) -> str:
    """Bytes to text; invalid UTF-8 becomes U+FFFD rather than an exception."""
    if isinstance(body, str):
        return body
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body).decode("utf-8", errors="replace")
    return ""


def _parse_json(text: str) -> object:
    """The parsed body, or _NOT_JSON; hostile nesting must not raise."""
    stripped = text.strip().lstrip("\ufeff").strip()
    if not stripped or _nesting(stripped) > _MAX_NESTING:
        return _NOT_JSON
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        return _NOT_JSON


#: Error bodies are a few levels deep. Deeper ones are read as text rather than parsed: parsing
#: them runs the interpreter to its recursion limit, where any finalizer that happens to run fails.
_MAX_NESTING = 64
_JSON_TOKENS = re.compile(r'\\.|["\[\]{}]', re.S)


def _nesting(text: str) -> int:
    """The deepest nesting of ``[``/``{`` outside strings, counted up to just past the limit."""
    depth = deepest = 0
    in_string = False
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        if token == '"':
            in_string = not in_string
        elif in_string or token[0] == "\\":
            continue
        elif token in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > _MAX_NESTING:
                    break
        else:
            depth -= 1
    return deepest


def _from_parsed(data: object) -> str:
    """The message from a parsed JSON body in any known shape, or ""."""
    if isinstance(data, str):
        return _clean(data, _MESSAGE_LIMIT)
    if isinstance(data, dict):
        return _from_object(data)
    return ""


def _is_blank(data: object, depth: int = 0) -> bool:
    """True for null, empty strings and containers holding only such values (shallow ones)."""
    # Depth is capped because a body nested hundreds deep still parses but would exhaust the stack.
    if depth > _BLANK_DEPTH:
        return False
    if isinstance(data, dict):
        return all(_is_blank(v, depth + 1) for v in data.values())
    if isinstance(data, list):
        return all(_is_blank(v, depth + 1) for v in data)
    return data is None or (isinstance(data, str) and not data.strip())


def _from_object(data: JSON) -> str:
    """error.message -> error (string) -> message -> detail (string or list)."""
    error = data.get("error")
    if isinstance(error, dict):
        found = _clean(error.get("message"), _MESSAGE_LIMIT)
        if found:
            return found
    for candidate in (error, data.get("message")):
        found = _clean(candidate, _MESSAGE_LIMIT)
        if found:
            return found
    return _from_detail(data.get("detail"))


def _from_detail(detail: object) -> str:
    """FastAPI's detail: a string, or a list of validation errors each with a "msg"."""
    if isinstance(detail, str):
        return _clean(detail, _MESSAGE_LIMIT)
    if not isinstance(detail, list):
        return ""
    parts = []
    for item in detail:
        msg = item.get("msg") if isinstance(item, dict) else item
        cleaned = _clean(msg, _MESSAGE_LIMIT)
        if cleaned:
            parts.append(cleaned)
    return _clean("; ".join(parts), _MESSAGE_LIMIT)


def _from_text(text: str, content_type: str | None) -> str:
    """Plain text or an HTML page (reverse proxies), tags stripped and cut short."""
    looks_html = "html" in (content_type or "").lower() or text.lstrip()[:1] == "<"
    if looks_html:
        text = _strip_html(text[:_HTML_SCAN_LIMIT])
    return _clean(text, _TEXT_LIMIT)


def _strip_html(text: str) -> str:
    """Visible text of an HTML page: scripts, styles, comments and tags removed."""
    for name in _INVISIBLE:
        text = _drop_blocks(text, f"<{name}", f"</{name}")
    text = _drop_blocks(text, "<!--", "-->")
    return html.unescape(_TAGS.sub(" ", text))


def _drop_blocks(text: str, start: str, end: str) -> str:
    """Remove every start...end block (case-insensitive) in one linear pass."""
    lowered = text.lower()
    kept: list[str] = []
    pos = 0
    while (begin := lowered.find(start, pos)) >= 0:
        kept.append(text[pos:begin])
        close = lowered.find(end, begin + len(start))
        if close < 0:
            return "".join(kept)
        after = lowered.find(">", close) if end.startswith("</") else close + len(end) - 1
        pos = len(text) if after < 0 else after + 1
        kept.append(" ")
    kept.append(text[pos:])
    return "".join(kept)


def _clean(value: object, limit: int) -> str:
    """Whitespace collapsed and length bounded; "" for anything that is not a string."""
    if not isinstance(value, str):
        return ""
    return _SPACE.sub(" ", value).strip()[:limit].rstrip()
