"""The app's downloads open in GIMP and Krita with the layer names and order the app shows.

GIMP (``gimp-console``, Script-Fu batch) lists the PSD's layers and flattens it; Krita (headless
under ``xvfb-run``) converts the PSD to ORA, whose ``stack.xml`` gives the layers as Krita read
them and whose merged image is Krita's rendering, and renders the app's ORA. Both renderings
must match the app's own composite. ``make test-deps`` installs the Debian packages (``gimp``,
``krita``, ``xvfb``); without them these tests are skipped.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from layerkit import Pipeline
from layerkit.app.session import Session
from layerkit.io.image import load_image

ASSET = Path(__file__).resolve().parents[1] / "layerkit" / "assets" / "astronaut.png"
GIMP = shutil.which("gimp-console") or shutil.which("gimp-console-2.10")
KRITA, XVFB = shutil.which("krita"), shutil.which("xvfb-run")


@pytest.fixture(scope="module")
def app_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], np.ndarray, dict[str, Path]]:
    """A two-object session (renamed, reordered) exported as PSD and ORA: names bottom → top, composite, files."""
    import cv2

    img = cv2.resize(load_image(ASSET), (320, 320), interpolation=cv2.INTER_AREA)
    pipe = Pipeline.from_config("classical")
    s = Session.from_array(img)
    s.box(pipe, (75, 5, 150, 110))
    s.rename("head")
    s.new_object()
    s.box(pipe, (20, 150, 300, 320))
    s.rename("suit")
    s.move_layer(-1)  # the suit goes below the head
    stack = s.stack()
    names = [layer.name for layer in stack.layers]
    assert names == ["background", "suit", "head"]
    root = tmp_path_factory.mktemp("editors")
    files = {}
    for fmt in ("psd", "ora"):
        (root / fmt).mkdir()
        files[fmt] = Path(s.export(fmt, root / fmt))
    return names, stack.composite()[..., :3], files


def _close(rendered: np.ndarray, expected: np.ndarray) -> None:
    """Same picture up to 8-bit rounding and the editors' own compositing (mean < 1/255, 99.5 % within 3/255)."""
    diff = np.abs(rendered.astype(np.float32) / 255 - expected)
    assert float(diff.mean()) < 1 / 255 and float(np.mean(diff <= 3 / 255)) > 0.995, (diff.mean(), diff.max())


def _env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, HOME=str(tmp_path))  # the editors write their settings under HOME


@pytest.mark.skipif(GIMP is None, reason="GIMP not installed (make test-deps installs it)")
def test_gimp_opens_the_app_psd_with_its_names_and_order(app_files, tmp_path: Path) -> None:
    names, composite, files = app_files
    flat = tmp_path / "gimp_flat.png"
    script = f"""
      (let* ((image (car (gimp-file-load RUN-NONINTERACTIVE "{files['psd']}" "{files['psd']}")))
             (layers (vector->list (cadr (gimp-image-get-layers image)))))
        (for-each (lambda (l) (gimp-message (string-append "LKLAYER:" (car (gimp-item-get-name l))))) layers)
        (let ((merged (car (gimp-image-flatten image))))
          (file-png-save-defaults RUN-NONINTERACTIVE image merged "{flat}" "{flat}")))"""
    run = subprocess.run([GIMP, "-i", "-d", "-f", "-n", "-c", "--batch-interpreter", "plug-in-script-fu-eval",
                          "-b", script, "-b", "(gimp-quit 0)"], capture_output=True, text=True, timeout=300,
                         env=_env(tmp_path))
    out = run.stdout + run.stderr
    seen = [line.split("LKLAYER:", 1)[1].strip() for line in out.splitlines() if "LKLAYER:" in line]
    assert seen == names[::-1], out[-2000:]  # GIMP lists top → bottom
    _close(np.asarray(Image.open(flat).convert("RGB")), composite)


@pytest.mark.skipif(KRITA is None or XVFB is None, reason="Krita or xvfb-run not installed (make test-deps installs them)")
def test_krita_opens_the_app_psd_and_ora_with_its_names_and_order(app_files, tmp_path: Path) -> None:
    names, composite, files = app_files

    def krita_export(src: Path, dst: Path) -> None:
        run = subprocess.run([XVFB, "-a", KRITA, "--export", "--export-filename", str(dst), str(src)],
                             capture_output=True, text=True, timeout=300, env=_env(tmp_path))
        assert dst.is_file(), (run.stdout + run.stderr)[-2000:]

    as_ora = tmp_path / "krita_from_psd.ora"
    krita_export(files["psd"], as_ora)
    import xml.etree.ElementTree as ET

    with zipfile.ZipFile(as_ora) as z:
        stack = ET.fromstring(z.read("stack.xml"))
        merged = np.asarray(Image.open(io.BytesIO(z.read("mergedimage.png"))).convert("RGB"))
    assert [e.get("name") for e in stack.iter("layer")] == names[::-1]  # ORA lists top → bottom
    _close(merged, composite)
    png = tmp_path / "krita_ora.png"
    krita_export(files["ora"], png)
    _close(np.asarray(Image.open(png).convert("RGB")), composite)
