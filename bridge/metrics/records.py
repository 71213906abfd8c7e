"""The one record kept per finished request, and its fixed-size binary form.

A :class:`Record` is written once, when the request is really over (for a stream: when its body
closes), and never changes afterwards. The same record feeds the Prometheus metrics (cumulative)
and the recent window (the JSON summary). Unknown figures are ``None`` in Python and NaN / -1 in
the packed form, so every record has the same shape and the same size on disk.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

__all__ = [
    "OUTCOMES",
    "PACKED_SIZE",
    "Record",
    "outcome_for_status",
    "pack",
    "unpack",
]

#: The closed set of outcome labels. Anything else is recorded as ``"error"``.
OUTCOMES = frozenset(
    {
        "ok",
        "client_disconnect",
        "upstream_error",
        "connect_error",
        "timeout",
        "http_4xx",
        "http_429",
        "http_5xx",
        "protocol_error",
        "bad_request",
        "unauthorized",
        "not_found",
        "not_supported",
        "error",
    }
)

# Fixed widths of the string fields in the packed form (bytes of UTF-8, truncated).
ROUTE_WIDTH = 64
METHOD_WIDTH = 8
MODEL_WIDTH = 48
OUTCOME_WIDTH = 20


@dataclass(slots=True)
class Record:
    """One finished request. Times in seconds; ``ts_s`` is the end, as an epoch timestamp."""

    ts_s: float
    route: str
    method: str
    status: int
    duration_s: float
    outcome: str = "ok"
    model: str | None = None
    stream: bool = False
    ttfb_s: float | None = None
    ttft_s: float | None = None
    tpot_s: float | None = None
    max_gap_s: float | None = None
    chunks: int = 0
    bytes_out: int = 0
    bytes_in: int = 0
    tokens_in: int | None = None
    tokens_out: int | None = None
    queue_s: float | None = None

    def normalised(self, *, model: str | None = None) -> Record:
        """A copy whose strings fit the packed widths and whose outcome is a known label
        (``model``: the bounded label to store instead of the raw model name).

        Records are normalised before they are stored, so a record read back from a ring file
        equals the one kept in memory.
        """
        model = model if model is not None else self.model
        outcome = self.outcome if self.outcome in OUTCOMES else "error"
        return Record(
            ts_s=float(self.ts_s),
            route=_fit(self.route or "unmatched", ROUTE_WIDTH),
            method=_fit(self.method or "-", METHOD_WIDTH),
            status=int(self.status) if 0 <= int(self.status) <= 999 else 0,
            duration_s=max(0.0, float(self.duration_s)),
            outcome=outcome,
            model=_fit(model, MODEL_WIDTH) if model else None,
            stream=bool(self.stream),
            ttfb_s=_opt_float(self.ttfb_s),
            ttft_s=_opt_float(self.ttft_s),
            tpot_s=_opt_float(self.tpot_s),
            max_gap_s=_opt_float(self.max_gap_s),
            chunks=max(0, int(self.chunks)),
            bytes_out=max(0, int(self.bytes_out)),
            bytes_in=max(0, int(self.bytes_in)),
            tokens_in=_opt_int(self.tokens_in),
            tokens_out=_opt_int(self.tokens_out),
            queue_s=_opt_float(self.queue_s),
        )


def outcome_for_status(status: int) -> str:
    """The outcome of a request nobody labelled explicitly, from its HTTP status alone."""
    if status < 400:
        return "ok"
    if status == 401:
        return "unauthorized"
    if status == 404:
        return "not_found"
    if status == 501:
        return "not_supported"
    if status < 500:
        return "bad_request"
    return "error"


# Packed layout (little endian, no padding):
#   d ts_s, d duration_s, d ttfb_s, d ttft_s, d tpot_s, d max_gap_s, d queue_s,
#   q tokens_in, q tokens_out, Q bytes_in, Q bytes_out, I chunks, H status, B stream,
#   route, method, model, outcome (fixed-width, NUL padded)
_FORMAT = f"<7d2q2QIHB{ROUTE_WIDTH}s{METHOD_WIDTH}s{MODEL_WIDTH}s{OUTCOME_WIDTH}s"
_STRUCT = struct.Struct(_FORMAT)
PACKED_SIZE = _STRUCT.size
_NAN = float("nan")
_UINT32_MAX = 2**32 - 1
_INT64_MAX = 2**63 - 1


def pack(rec: Record) -> bytes:
    """The fixed-size binary form of a normalised record."""
    return _STRUCT.pack(
        rec.ts_s,
        rec.duration_s,
        _NAN if rec.ttfb_s is None else rec.ttfb_s,
        _NAN if rec.ttft_s is None else rec.ttft_s,
        _NAN if rec.tpot_s is None else rec.tpot_s,
        _NAN if rec.max_gap_s is None else rec.max_gap_s,
        _NAN if rec.queue_s is None else rec.queue_s,
        -1 if rec.tokens_in is None else min(rec.tokens_in, _INT64_MAX),
        -1 if rec.tokens_out is None else min(rec.tokens_out, _INT64_MAX),
        min(rec.bytes_in, _INT64_MAX),
        min(rec.bytes_out, _INT64_MAX),
        min(rec.chunks, _UINT32_MAX),
        rec.status,
        1 if rec.stream else 0,
        rec.route.encode(),
        rec.method.encode(),
        (rec.model or "").encode(),
        rec.outcome.encode(),
    )


def unpack(data: bytes | memoryview, offset: int = 0) -> Record:
    """The record packed at ``offset`` of ``data``.

    Positional construction and inline decoding: a summary unpacks every worker's whole window,
    so this runs up to ``METRICS_WINDOW`` times per worker per summary.
    """
    (ts, dur, ttfb, ttft, tpot, gap, queue, tin, tout, bin_, bout, chunks, status, stream,
     route, method, model, outcome) = _STRUCT.unpack_from(data, offset)
    model_text = model.rstrip(b"\x00").decode("utf-8", "replace")
    # Field order of Record: ts_s, route, method, status, duration_s, outcome, model, stream, ttfb_s,
    # ttft_s, tpot_s, max_gap_s, chunks, bytes_out, bytes_in, tokens_in, tokens_out, queue_s.
    return Record(
        ts, route.rstrip(b"\x00").decode("utf-8", "replace"), method.rstrip(b"\x00").decode("utf-8", "replace"),
        status, dur, outcome.rstrip(b"\x00").decode("utf-8", "replace"), model_text or None, stream == 1,
        None if ttfb != ttfb else ttfb, None if ttft != ttft else ttft, None if tpot != tpot else tpot,
        None if gap != gap else gap, chunks, bout, bin_, None if tin < 0 else tin, None if tout < 0 else tout,
        None if queue != queue else queue,
    )


def _fit(text: str | None, width: int) -> str:
    """``text`` cut to at most ``width`` bytes of UTF-8, never splitting a character."""
    if text is None:
        return ""
    if type(text) is str and len(text) <= width and text.isascii() and "\x00" not in text:
        return text  # the usual case (route templates, methods, model labels): nothing to cut
    raw = str(text).replace("\x00", "").encode("utf-8", "replace")
    if len(raw) <= width:
        return raw.decode("utf-8", "replace")
    return raw[:width].decode("utf-8", "ignore")


def _opt_float(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        return None
    return value


def _opt_int(value: int | None) -> int | None:
    if value is None:
        return None
    value = int(value)
    return value if value >= 0 else None
