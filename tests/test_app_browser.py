"""The real app in a real browser: ``layerkit app`` in a subprocess, driven by headless Chromium
(Debian's ``chromium``, via Playwright), and its API endpoints through ``gradio_client``.

Needs the ``app`` extra, Playwright and a system Chromium (``make test-deps`` installs them).
Outside CI the tests are skipped when one is missing; under ``CI=true`` a missing one fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "layerkit" / "assets" / "astronaut.png"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.slow


def _need(ok: bool, what: str) -> None:
    if not ok:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{what} is missing in CI; run make test-deps")
        pytest.skip(f"{what} is not installed (make test-deps)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``layerkit app`` on a free port; yields its URL and stops it afterwards."""
    import importlib.util

    _need(importlib.util.find_spec("gradio") is not None, "gradio (the app extra)")
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", NO_PROXY="127.0.0.1,localhost")
    log = tmp_path_factory.mktemp("app") / "app.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "layerkit", "app", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"layerkit app exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"layerkit app did not answer within 120 s: {log.read_text()[-2000:]}")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]  # handled errors never dump one


@pytest.fixture(scope="module")
def page(server):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    _need(sync_playwright is not None, "playwright")
    _need(CHROMIUM is not None, "chromium (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        pg = browser.new_page(viewport={"width": 1400, "height": 1600})
        pg.set_default_timeout(90_000)
        pg.goto(server)
        pg.wait_for_selector("#photo input[type=file]", state="attached")
        yield pg
        browser.close()


def _wait_status(pg, text: str) -> str:
    pg.wait_for_function("t => (document.querySelector('#status')?.innerText || '').includes(t)", arg=text)
    return pg.locator("#status").inner_text()


def _click_photo(pg, x: float, y: float, size: tuple[int, int]) -> None:
    img = pg.locator("#view img")
    box = img.bounding_box()
    assert box is not None
    img.click(position={"x": box["width"] * x / size[0], "y": box["height"] * y / size[1]})


def test_browser_upload_click_refine_download_psd(page, tmp_path):
    from layerkit import LayerStack

    pg = page
    pg.locator("#photo input[type=file]").set_input_files(str(PHOTO))
    assert "512×512" in _wait_status(pg, "Photo loaded")
    pg.wait_for_selector("#view img")
    _click_photo(pg, 240, 330, (512, 512))  # the suit
    _wait_status(pg, "after click 1")
    pg.wait_for_selector("#fg img")
    _click_photo(pg, 340, 300, (512, 512))  # its right half: a refinement click
    _wait_status(pg, "after click 2")
    assert "object 1" in pg.locator("#layers").inner_text()
    pg.locator("#name textarea, #name input").first.fill("suit")
    pg.locator("#rename").click()
    _wait_status(pg, "Layer renamed")
    pg.locator("#save").click()
    _wait_status(pg, "PSD ready")
    link = pg.locator("#download a").first
    link.wait_for()
    with pg.expect_download() as dl:
        link.click()
    path = tmp_path / "stack.psd"
    dl.value.save_as(path)
    stack = LayerStack.load(path)
    assert stack.names == ["background", "suit"]
    alpha = stack[1].alpha
    assert alpha[330, 240] > 0.9 and alpha[300, 340] > 0.9  # both clicked parts are in the layer
    assert alpha[20, 20] < 0.1 and 0.05 < (alpha > 0.5).mean() < 0.6


def test_browser_bad_upload_shows_a_message(page, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    page.reload()  # a new session: the upload box is empty again
    page.locator("#photo input[type=file]").set_input_files(str(bad))
    msg = _wait_status(page, "not an image")
    assert "Traceback" not in page.content() and "⚠" in msg
    page.locator("#find").click()  # a phrase without a grounder and without a photo: still a message
    _wait_status(page, "type a phrase")


def test_gradio_client_calls_both_endpoints(server, tmp_path):
    import importlib.util

    _need(importlib.util.find_spec("gradio_client") is not None, "gradio_client")
    from gradio_client import Client, handle_file

    from layerkit import LayerStack

    client = Client(server, verbose=False)
    one = client.predict(handle_file(str(PHOTO)), '{"boxes": [[150, 15, 300, 215]], "name": "head"}', api_name="/decompose")
    stack = LayerStack.load(one)
    assert stack.names == ["background", "head"] and stack[1].alpha[100, 225] > 0.9
    prompts = '[{"boxes": [[150, 15, 300, 215]], "name": "head"}, {"points": [[240, 330], [340, 300]], "name": "suit"}]'
    many = client.predict(handle_file(str(PHOTO)), prompts, api_name="/layers")
    stack = LayerStack.load(many)
    assert len(stack) == 3 and set(stack.names) == {"background", "head", "suit"}
    with pytest.raises(Exception, match="grounding stage"):
        client.predict(handle_file(str(PHOTO)), '{"text": "the astronaut"}', api_name="/decompose")
    with pytest.raises(Exception, match="not valid JSON"):
        client.predict(handle_file(str(PHOTO)), "{boxes", api_name="/layers")
    assert np.isfinite(stack[0].rgba).all()
