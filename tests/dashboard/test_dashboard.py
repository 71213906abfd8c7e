"""The live status page (/dashboard): plain route tests, and a browser test in headless Chromium.

The browser test drives Debian's Chromium through Selenium and ChromeDriver (/usr/bin/chromium,
/usr/bin/chromedriver; no browser download) against the bridge run as in production (gunicorn, two
gevent workers, the built-in demo backend), while traffic flows. It checks that the page loads
without console errors (a CSP violation would be one), that its figures match /metrics/summary,
that the recent-requests table lists the routes sent, and that the page fits a phone-wide screen.
Screenshots go to the test's tmp dir; docs/dashboard.png is (re)written when it is missing or when
BRIDGE_UPDATE_SCREENSHOTS=1, so ordinary runs do not churn a committed file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import threading
import time
from pathlib import Path

import pytest
import requests
from flask import Flask

from bridge.app import create_app
from bridge.config import Settings
from bridge.routes.dashboard import DASHBOARD_HTML, dashboard_blueprint
from tests.bridgeproc import REPO, BridgeProcess

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TOKEN = "dash-s3cret"


def client(token=None):
    app = Flask("dash")
    app.register_blueprint(dashboard_blueprint(token=token))
    return app.test_client()


# -- plain tests (Flask test client) ------------------------------------------------------------


def test_page_is_self_contained_html():
    resp = client().get("/dashboard")
    assert resp.status_code == 200
    assert resp.mimetype == "text/html"
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    page = resp.get_data(as_text=True)
    assert page.startswith("<!doctype html>")
    assert "http://" not in page and "https://" not in page  # no CDN, no external anything
    assert not re.search(r"""(src|href)\s*=\s*["']?//""", page)  # no protocol-relative URLs either
    # Polls use relative URLs (work under a proxy sub-path), never absolute /metrics paths.
    assert '"./metrics/summary?window_s="' in page and '"./ready"' in page
    assert not re.search(r"""fetch\(\s*["']/""", page)
    assert page == DASHBOARD_HTML.read_text(encoding="utf-8")


def test_csp_allows_exactly_the_inline_style_and_script():
    resp = client().get("/dashboard")
    csp = resp.headers["Content-Security-Policy"]
    page = resp.get_data(as_text=True)
    for tag in ("style", "script"):
        (block,) = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.S)
        digest = base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()
        assert f"{tag}-src 'sha256-{digest}'" in csp
    assert "connect-src 'self'" in csp and "default-src 'none'" in csp


def test_token_guard():
    c = client(token=TOKEN)
    resp = c.get("/dashboard")
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert "error" in resp.get_json() and TOKEN not in resp.get_data(as_text=True)
    assert c.get("/dashboard", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.get("/dashboard?token=wrong").status_code == 401
    assert c.get("/dashboard?token=").status_code == 401
    assert c.get("/dashboard", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert c.get("/dashboard", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200
    assert c.get(f"/dashboard?token={TOKEN}").status_code == 200
    # A header, when present, is what counts.
    assert c.get(f"/dashboard?token={TOKEN}", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client(token=None).get("/dashboard?token=anything").status_code == 200


def test_registered_by_create_app_and_not_counted():
    app = create_app(Settings(metrics_token=TOKEN))
    c = app.test_client()
    assert c.get("/dashboard").status_code == 401
    assert c.get(f"/dashboard?token={TOKEN}").status_code == 200
    summary = c.get("/metrics/summary", headers={"Authorization": f"Bearer {TOKEN}"}).get_json()
    assert summary["total_requests"] == 0 and summary["recent"] == []
    assert create_app(Settings()).test_client().get("/dashboard").status_code == 200


# -- browser test --------------------------------------------------------------------------------


def _browser_or_skip():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    for path, pkg in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (os.path.exists(path) or shutil.which(os.path.basename(path))):
            pytest.skip(f"{path} not found: install Debian's {pkg} (apt-get install -y chromium chromium-driver)")
    return webdriver


class Traffic:
    """Background load on the bridge: streamed and plain chats, completions, tags, errors, cancels."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.sent: list[str] = []
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(3)]

    def one(self, kind: int) -> None:
        u = self.url
        if kind == 0:
            with requests.post(u + "/api/chat", json={"model": "demo", "messages": [{"role": "user", "content": "hi"}]},
                               stream=True, timeout=10) as r:
                assert r.status_code == 200, r.text
                for _ in r.iter_lines():
                    pass
            self.sent.append("/api/chat")
        elif kind == 1:
            r = requests.post(u + "/api/generate", json={"model": "demo", "prompt": "hello", "stream": False},
                              timeout=10)
            assert r.status_code == 200, r.text
            self.sent.append("/api/generate")
        elif kind == 2:
            r = requests.post(u + "/v1/chat/completions", timeout=10,
                              json={"model": "demo", "messages": [{"role": "user", "content": "hey"}]})
            assert r.status_code == 200, r.text
            self.sent.append("/v1/chat/completions")
        elif kind == 3:
            assert requests.get(u + "/api/tags", timeout=10).status_code == 200
            self.sent.append("/api/tags")
        elif kind == 4:  # an error: unknown model
            r = requests.post(u + "/api/generate", json={"model": "no-such-model", "prompt": "x", "stream": False},
                              timeout=10)
            assert r.status_code >= 400
            self.sent.append("/api/generate")
        elif kind == 5:  # a cancellation: read one line of a stream, then hang up
            with requests.post(u + "/api/generate", json={"model": "demo", "prompt": "a long answer please"},
                               stream=True, timeout=10) as r:
                next(r.iter_lines())
            self.sent.append("/api/generate")

    def run(self, i: int) -> None:
        n = i
        while not self.stop.is_set():
            try:
                self.one(n % 6)
            except Exception as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(repr(exc))
            n += 1
            time.sleep(0.05)

    def __enter__(self) -> Traffic:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(15)


def _summary(bridge: BridgeProcess, window_s: int = 300) -> dict:
    resp = requests.get(f"{bridge.url}/metrics/summary?window_s={window_s}",
                        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    resp.raise_for_status()
    return resp.json()


def _wait(cond, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _screenshot(driver, path: Path, *, width: int, mobile: bool = False) -> int:
    """A full-page PNG at ``width`` CSS pixels; returns how far the page overflows sideways."""
    metrics = {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": mobile}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    time.sleep(0.3)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": height})
    time.sleep(0.3)
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    path.write_bytes(base64.b64decode(shot["data"]))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return overflow


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_dashboard_in_headless_chromium(tmp_path):
    webdriver = _browser_or_skip()
    from selenium.webdriver.chrome.service import Service

    bridge = BridgeProcess({"METRICS_TOKEN": TOKEN, "DEMO_TOKEN_DELAY": "0.03"}, workers=2, tmp_dir=tmp_path)
    driver = None
    try:
        bridge.wait_ready()
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1280,900", f"--user-data-dir={tmp_path / 'profile'}"):
            opts.add_argument(flag)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        try:
            driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER,
                                                      log_output=str(tmp_path / "chromedriver.log")),
                                      options=opts)
        except Exception as exc:  # noqa: BLE001
            pytest.skip(f"headless Chromium did not start: {exc}")
        driver.set_page_load_timeout(20)

        def value(el_id: str) -> str:
            return driver.find_element("id", el_id).get_attribute("data-value") or ""

        def polls() -> int:
            return int(driver.find_element("tag name", "body").get_attribute("data-polls") or 0)

        driver.get(f"{bridge.url}/dashboard?token={TOKEN}&every=1")
        assert driver.title == "bridge status"
        _wait(lambda: polls() >= 1, 10, "the first poll")
        _wait(lambda: value("backend") == "ready", 10, "backend status 'ready'")

        with Traffic(bridge.url) as traffic:
            # While traffic flows: a rate shows, and the page's total is never ahead of the bridge's.
            _wait(lambda: value("rps") not in ("", "0") and float(value("rps")) > 0, 20, "a request rate > 0")
            time.sleep(1.5)
            page_total = int(value("total"))
            live_total = _summary(bridge)["total_requests"]
            assert 0 < page_total <= live_total
            assert live_total - page_total < 200  # the page is at most a couple of polls behind
            time.sleep(2)
        assert not traffic.errors, traffic.errors[:3]

        # One quiet, sequential round of every kind, so each route is among the 20 most recent.
        tail = Traffic(bridge.url)
        for kind in range(6):
            tail.one(kind)
        sent_routes = set(traffic.sent) | set(tail.sent)

        def settled():
            a = _summary(bridge)
            time.sleep(0.5)
            b = _summary(bridge)
            return b if a["total_requests"] == b["total_requests"] and b["active_requests"] == 0 else None

        expected = _wait(settled, 20, "the bridge to settle after traffic")
        after = polls()
        _wait(lambda: polls() >= after + 2, 10, "two polls after traffic stopped")
        s = _summary(bridge)
        assert s["total_requests"] == expected["total_requests"]

        # The page shows what /metrics/summary says.
        assert int(value("total")) == s["total_requests"]
        assert int(value("failed")) == s["failed_requests"] > 0
        assert int(value("cancelled")) == s["cancelled_requests"]
        assert int(value("window-requests")) == s["window"]["requests"]
        assert int(value("active")) == s["active_requests"] == 0
        assert int(value("streams")) == s["streaming"]["total_streams"] > 0
        assert float(value("p50")) == pytest.approx(s["performance"]["p50_ms"])
        assert float(value("p95")) == pytest.approx(s["performance"]["p95_ms"])
        assert float(value("p99")) == pytest.approx(s["performance"]["p99_ms"])
        assert float(value("ttft")) == pytest.approx(s["streaming"]["ttft_p50_ms"])
        assert float(value("error-rate")) == pytest.approx(s["error_rate"])
        assert value("rps") == "0"  # nothing happened between the last two polls
        # Visible text carries units.
        assert driver.find_element("id", "p95").text.endswith(("ms", " s"))
        assert driver.find_element("id", "rps").find_element("xpath", "..").text.endswith("req/s")

        # The per-model and recent tables.
        model_rows = driver.find_elements("css selector", "#models tbody tr[data-model]")
        assert {r.get_attribute("data-model") for r in model_rows} == set(s["models"])
        assert "demo" in s["models"]
        recent_rows = driver.find_elements("css selector", "#recent tbody tr[data-route]")
        page_routes = [r.get_attribute("data-route") for r in recent_rows]
        assert page_routes == [r["route"] for r in s["recent"]]
        assert sent_routes <= set(page_routes), (sent_routes, page_routes)
        assert {"/api/chat", "/api/generate", "/v1/chat/completions", "/api/tags"} <= set(page_routes)
        table_text = driver.find_element("id", "recent").text
        assert "a long answer please" not in table_text and "hello" not in table_text  # no prompt text
        assert TOKEN not in driver.find_element("tag name", "body").text

        # Charts were drawn from the client-side history.
        assert driver.find_elements("css selector", "#chart-rate polyline.s1")
        assert driver.find_elements("css selector", "#chart-latency polyline")

        # Screenshots: wide (artifact, and docs/dashboard.png when asked for or missing) and phone
        # width, where nothing may overflow sideways (wide tables scroll inside their own box).
        wide, phone = tmp_path / "dashboard-wide.png", tmp_path / "dashboard-phone.png"
        assert _screenshot(driver, wide, width=1200) <= 0
        assert wide.stat().st_size > 10_000
        docs_png = REPO / "docs" / "dashboard.png"
        if os.environ.get("BRIDGE_UPDATE_SCREENSHOTS") == "1" or not docs_png.exists():
            shutil.copyfile(wide, docs_png)
        overflow = _screenshot(driver, phone, width=390, mobile=True)
        assert overflow <= 0, f"page is {overflow}px wider than a 390px screen"

        # No console errors from the whole session (failed fetches and CSP violations log as SEVERE).
        logs = driver.get_log("browser")
        severe = [e for e in logs if e.get("level") == "SEVERE"]
        assert not severe, json.dumps(severe, indent=1)
        assert driver.find_element("id", "notice").text == ""
        print(f"\nscreenshots: {wide} {phone}")
    finally:
        if driver is not None:
            driver.quit()
        bridge.stop()
