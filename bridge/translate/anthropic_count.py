"""``/v1/messages/count_tokens``: the documented estimate of a Messages request's input tokens."""

from __future__ import annotations

import json
import math

from bridge.errors import ClientRequestError
from bridge.translate.anthropic_input import translate_messages, translate_system, translate_tools
from bridge.translate.json_types import JSON

__all__ = ["count_tokens"]

# count_tokens: characters per token, and what each message and tool costs on top of its text.
_CHARS_PER_TOKEN = 4
_MESSAGE_OVERHEAD = 4
_IMAGE_TOKENS = 1600  # a 1092x1092 image by Anthropic's published (w*h)/750 rule


def count_tokens(body: JSON) -> int:
    """An estimate of a Messages request's input tokens, without calling any tokenizer.

    One token per 4 characters (rounded up) of every text the model would read: the system prompt,
    text blocks, tool_use inputs and tool_result contents as JSON, and each tool's name,
    description and input_schema as JSON; plus 4 tokens per message and 1,600 per image.
    """
    if not isinstance(body, dict):
        raise ClientRequestError("request body must be a JSON object")
    openai_like = translate_system(body.get("system")) + translate_messages(body.get("messages"))
    chars = 0
    images = 0
    for message in openai_like:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if part["type"] == "text":
                    chars += len(part["text"])
                else:
                    images += 1
        for call in message.get("tool_calls", ()):
            chars += len(call["function"]["name"]) + len(call["function"]["arguments"])
    for tool in translate_tools(body.get("tools")):
        chars += len(json.dumps(tool["function"], ensure_ascii=False))
    return math.ceil(chars / _CHARS_PER_TOKEN) + _MESSAGE_OVERHEAD * len(openai_like) + _IMAGE_TOKENS * images
