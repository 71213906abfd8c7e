"""``GET /dashboard``: a live status page for people, drawn from ``/metrics/summary`` and ``/ready``.

The page is one self-contained HTML document (``bridge/static/dashboard.html``: inline CSS, a small
inline script, charts as inline SVG; no CDN, no build step). It is read once, when the blueprint is
created, and served as is. Its script polls ``metrics/summary?window_s=...`` and ``ready`` with
*relative* URLs, so the page also works behind a reverse proxy that mounts the bridge under a
sub-path (``/bridge/dashboard`` polls ``/bridge/metrics/summary``).

Token guard (when ``METRICS_TOKEN`` is set). The page shows the same figures as ``/metrics/summary``,
so it is guarded by the same token, compared in constant time (``hmac.compare_digest``). The token is
accepted in either of two places:

* ``Authorization: Bearer <token>``, for clients and proxies that can add a header; or
* ``?token=<token>`` on the page URL, because a browser cannot add a header to a page it navigates
  to. The page's script reads that parameter and sends it to ``metrics/summary`` as an
  ``Authorization: Bearer`` header (the JSON routes themselves never accept a query token).

The query form was chosen over a cookie or a login form because it needs no state and no extra
routes, and a bookmark works. Its cost: the token appears in the address bar, the browser history
and the access logs of anything in front of the bridge. To limit that, the page is served with
``Referrer-Policy: no-referrer`` (the token never leaves in a ``Referer``), ``Cache-Control:
no-store`` and a Content-Security-Policy that allows only the page's own inline style and script
(by hash) and requests to its own origin. Prefer the header (or a proxy that adds it) where the URL
may be logged. Without ``METRICS_TOKEN`` the page is open, like ``/metrics/summary``.

Like the other monitoring routes, ``/dashboard`` is not counted in the request metrics.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from flask import Blueprint, Response, jsonify, request

from ..error_bodies import ollama_error
from .auth import bearer_token, matches

__all__ = ["DASHBOARD_HTML", "dashboard_blueprint"]

#: The page served by ``GET /dashboard``.
DASHBOARD_HTML = Path(__file__).resolve().parents[1] / "static" / "dashboard.html"


def _csp(html: str) -> str:
    """A Content-Security-Policy allowing exactly the page's inline <style> and <script> blocks."""

    def hashes(tag: str) -> str:
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.S)
        return " ".join(
            "'sha256-" + base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() + "'" for b in blocks
        ) or "'none'"

    return ("default-src 'none'; connect-src 'self'; img-src 'self' data:; "
            f"style-src {hashes('style')}; script-src {hashes('script')}; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def dashboard_blueprint(*, token: str | None) -> Blueprint:
    """The ``/dashboard`` route; ``token`` is ``METRICS_TOKEN`` (None: the page is open)."""
    bp = Blueprint("dashboard", __name__)
    html = DASHBOARD_HTML.read_text(encoding="utf-8")
    body = html.encode("utf-8")
    headers = {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": _csp(html),
    }
    expected = token.encode() if token else None

    def authorised() -> bool:
        if expected is None:
            return True
        # The header wins; the page URL's ?token= is for browsers, which cannot send one.
        given = bearer_token() or request.args.get("token", "").strip().encode() or None
        return matches(given, expected)

    @bp.get("/dashboard")
    def dashboard():
        if not authorised():
            resp = jsonify(ollama_error("the dashboard needs 'Authorization: Bearer <METRICS_TOKEN>' "
                                        "or '?token=<METRICS_TOKEN>' on its URL"))
            resp.status_code = 401
            resp.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
            resp.headers["Cache-Control"] = "no-store"
            return resp
        return Response(body, status=200, mimetype="text/html", headers=headers)

    return bp
