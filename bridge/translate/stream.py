"""StreamTranslator: parsed OpenAI SSE events -> Ollama NDJSON chunk dicts (one final done chunk)."""

from __future__ import annotations

from collections.abc import Callable

from bridge.errors import UpstreamProtocolError
from bridge.translate.completion import error_message, reasoning_text, stream_choice
from bridge.translate.json_types import JSON
from bridge.translate.logprobs import logprobs_from_choice
from bridge.translate.ollama_metrics import (
    CHARS_PER_TOKEN,
    BackendTimings,
    Timings,
    backend_timings,
    done_reason,
    metrics,
)
from bridge.translate.tool_call_buffer import ToolCallBuffer

__all__ = ["StreamTranslator"]


class StreamTranslator:
    """Turns one backend stream into Ollama chunks; the final chunk comes only from finish()."""

    def __init__(
        self,
        kind: str,
        *,
        model: str,
        created_at: Callable[[], str],
        keep_thinking: bool,
        completions: bool = False,
        prompt_estimate: int = 0,
    ) -> None:
        if kind not in ("chat", "generate"):
            raise ValueError(f"kind must be 'chat' or 'generate', not {kind!r}")
        self._kind = kind
        self._model = model
        self._created_at = created_at
        self._keep_thinking = keep_thinking
        self._completions = completions
        self._calls = ToolCallBuffer()
        self._prompt_tokens: int | None = None
        self._completion_tokens: int | None = None
        self._timings: BackendTimings | None = None
        self._prompt_estimate = prompt_estimate
        self._pieces = 0  # output deltas forwarded (text, thinking, tool-call fragments, logprobs)
        self._chars = 0  # output characters forwarded
        self._logprob_tokens = 0
        self._finished = False
        self._stamp: str | None = None  # created_at shared by the chunks of one read (begin_read)
        self._batching = False
        self.finish_reason: str | None = None
        self.has_output = False

    @property
    def usage(self) -> tuple[int | None, int | None]:
        """(prompt_tokens, completion_tokens) from the backend's usage, else from its ``timings``
        counts; None when it sent neither (yet)."""
        timings = self._timings or BackendTimings()
        prompt = self._prompt_tokens if self._prompt_tokens is not None else timings.prompt_n
        completion = self._completion_tokens if self._completion_tokens is not None else timings.eval_n
        return prompt, completion

    def eval_estimate(self) -> int:
        """Output tokens when the backend counts none: one per logprob entry when it sent them, else
        one per delta forwarded (servers stream a token per event), else from the text length."""
        if self._logprob_tokens:
            return self._logprob_tokens
        return self._pieces or -(-self._chars // CHARS_PER_TOKEN)

    def begin_read(self) -> None:
        """The events fed until the next call arrived in one read: their chunks share one
        ``created_at`` (they left the backend together), so the clock is formatted once per read,
        not once per chunk. Without calls to this, every chunk reads the clock."""
        self._batching = True
        self._stamp = None

    def _now(self) -> str:
        if not self._batching:
            return self._created_at()
        if self._stamp is None:
            self._stamp = self._created_at()
        return self._stamp

    def feed(self, event: JSON) -> list[JSON]:
        """One parsed SSE JSON object -> zero or more done:false Ollama chunks."""
        if self._finished:
            raise RuntimeError("feed() after finish()")
        if not isinstance(event, dict):
            raise UpstreamProtocolError("backend stream event is not a JSON object")
        message = error_message(event)
        if message is not None:
            raise UpstreamProtocolError(message)
        self._take_usage(event.get("usage"))
        found = backend_timings(event)
        if found is not None:
            self._timings = found  # llama-server: on the last chunk; the last one seen wins
        choice = stream_choice(event)
        if choice is None:
            return []  # the usage-only chunk after finish_reason, or a keep-alive
        chunks = []
        token = self._token_chunk(choice)
        if token is not None:
            chunks.append(token)
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            self.finish_reason = reason
            # Calls are whole only now; the done chunk still waits for usage (finish()).
            calls = self._flush_calls()
            if calls:
                chunks.append(self._calls_chunk(calls))
        return chunks

    def finish(self, timings: Timings) -> JSON:
        """The one final done:true chunk with done_reason and metrics (call exactly once)."""
        if self._finished:
            raise RuntimeError("finish() called twice")
        self._finished = True
        calls = self._flush_calls()
        final = self._base_chunk("", "", done=True)
        if calls:
            # Stream ended without a finish_reason: the calls ride on the only chunk left.
            final["message"]["tool_calls"] = calls
        final["done_reason"] = done_reason(self.finish_reason)
        if self._kind == "generate":
            final["context"] = []
        final.update(metrics(self._prompt_tokens, self._completion_tokens, timings, backend=self._timings,
                             prompt_estimate=self._prompt_estimate, eval_estimate=self.eval_estimate()))
        return final

    def _take_usage(self, usage: object) -> None:
        """Remember token counts; the last usage seen wins (some servers repeat it cumulatively)."""
        if not isinstance(usage, dict):
            return
        for key, attr in (("prompt_tokens", "_prompt_tokens"), ("completion_tokens", "_completion_tokens")):
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(self, attr, max(0, value))
            elif isinstance(value, float) and value.is_integer():
                setattr(self, attr, max(0, int(value)))

    def _token_chunk(self, choice: JSON) -> JSON | None:
        """A chunk for this choice's text/reasoning, buffering any tool-call fragments."""
        if self._completions:
            text = choice["text"] if isinstance(choice.get("text"), str) else ""
            thinking = ""
        else:
            delta = choice["delta"] if isinstance(choice.get("delta"), dict) else {}
            text = delta["content"] if isinstance(delta.get("content"), str) else ""
            thinking = reasoning_text(delta) if self._keep_thinking else ""
            if self._kind == "chat" and delta.get("tool_calls"):
                self._calls.add(delta.get("tool_calls"))
                self._pieces += 1
        logprobs = logprobs_from_choice(choice)
        if not text and not thinking and not logprobs:
            return None  # role-only / empty deltas carry nothing a client needs
        # Like Ollama, a chunk that carries only logprobs is still sent (its text may come later).
        chunk = self._base_chunk(text, thinking, done=False)
        if logprobs:
            chunk["logprobs"] = logprobs
            self._logprob_tokens += len(logprobs)
        if text or thinking:
            self._pieces += 1
            self._chars += len(text) + len(thinking)
            self.has_output = True
        return chunk

    def _flush_calls(self) -> list[JSON]:
        """All buffered tool calls as Ollama calls (empty for generate)."""
        calls = self._calls.flush()
        if calls:
            self.has_output = True
        return calls

    def _calls_chunk(self, calls: list[JSON]) -> JSON:
        """The single done:false chunk that carries every tool call, like Ollama emits it."""
        chunk = self._base_chunk("", "", done=False)
        chunk["message"]["tool_calls"] = calls
        return chunk

    def _base_chunk(self, text: str, thinking: str, *, done: bool) -> JSON:
        """A chat or generate chunk skeleton."""
        chunk: JSON = {"model": self._model, "created_at": self._now()}
        if self._kind == "chat":
            chunk["message"] = {"role": "assistant", "content": text}
            if thinking:
                chunk["message"]["thinking"] = thinking
        else:
            chunk["response"] = text
            if thinking:
                chunk["thinking"] = thinking
        chunk["done"] = done
        return chunk
