"""Which member of a fleet answered: INSTANCE_NAME in /health, /metrics/summary, the access line,
and the dashboard."""

from __future__ import annotations

import json
import logging

import pytest

import bridge.logs
from bridge import create_app
from bridge.config import Settings
from bridge.logs import set_instance
from tests.bridgeproc import REPO


@pytest.fixture(autouse=True)
def _restore_logging(monkeypatch):
    """create_app binds the log handlers to this test's captured stdout: put the old ones back."""
    logger = logging.getLogger("bridge")
    monkeypatch.setattr(logger, "handlers", list(logger.handlers))
    monkeypatch.setattr(bridge.logs, "_access_writer", bridge.logs._access_writer)
    yield
    set_instance(None)


def _client(**env):
    settings = Settings.from_env({"DEMO_TOKEN_DELAY": "0", "LOG_LEVEL": "INFO", **env})
    return create_app(settings).test_client()


def test_health_and_summary_name_the_instance(capsys):
    c = _client(INSTANCE_NAME="web.7")
    assert c.get("/health").get_json() == {"status": "ok", "instance": "web.7"}
    assert c.get("/metrics/summary").get_json()["instance"] == "web.7"
    assert c.get("/v1/metrics").get_json()["instance"] == "web.7"  # the existing proxy's alias


def test_heroku_dyno_name_is_the_default(capsys):
    c = _client(DYNO="web.3")
    assert c.get("/health").get_json()["instance"] == "web.3"


def test_access_line_names_the_instance(capsys):
    c = _client(INSTANCE_NAME="web.9")
    capsys.readouterr()
    assert c.get("/api/tags").status_code == 200
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"bridge.access"' in line]
    assert len(lines) == 1
    assert lines[0]["instance"] == "web.9" and lines[0]["route"] == "/api/tags"


def test_dashboard_shows_the_instance():
    html = (REPO / "bridge" / "static" / "dashboard.html").read_text()
    assert 'id="instance"' in html
    assert 'set("instance", s.instance' in html
    # A poll answered by another instance does not make a rate out of two instances' counters.
    assert "prev.instance === h.instance" in html


@pytest.mark.integration
@pytest.mark.timeout(90)
def test_dashboard_names_the_instance_in_a_browser(tmp_path):
    """Headless Chromium on the real page (gunicorn): the header shows INSTANCE_NAME."""
    import os
    import shutil
    import time

    from tests.bridgeproc import BridgeProcess

    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = "/usr/bin/chromium", "/usr/bin/chromedriver"
    if not (os.path.exists(chromium) and (os.path.exists(chromedriver) or shutil.which("chromedriver"))):
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    bridge = BridgeProcess({"INSTANCE_NAME": "web.5"}, workers=1, tmp_dir=tmp_path)
    driver = None
    try:
        bridge.wait_ready()
        opts = webdriver.ChromeOptions()
        opts.binary_location = chromium
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
                     "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}"):
            opts.add_argument(flag)
        try:
            driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=opts)
        except Exception as exc:  # noqa: BLE001
            pytest.skip(f"headless Chromium did not start: {exc}")
        driver.set_page_load_timeout(20)
        driver.get(f"{bridge.url}/dashboard?every=1")
        deadline = time.monotonic() + 15
        element = driver.find_element("id", "instance")
        while time.monotonic() < deadline and element.get_attribute("data-value") != "web.5":
            time.sleep(0.1)
        assert element.get_attribute("data-value") == "web.5"
        assert element.text == "instance: web.5"
    finally:
        if driver is not None:
            driver.quit()
        bridge.stop()
