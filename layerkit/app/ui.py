"""The Gradio page of ``layerkit app`` and its API endpoints.

One :class:`~layerkit.app.session.Session` per browser session lives in ``gr.State``; the
pipeline is shared and its calls are serialised by a lock (the CPU is the bottleneck anyway).
Every handler catches errors and shows one line in the page's status box (and a warning toast):
bad input never produces a traceback and never stops the server.

API endpoints (for ``gradio_client``):

* ``/decompose``: image file + prompt JSON (``{"points": [[x, y]], "labels": [1], "boxes":
  [[x0, y0, x1, y1]], "text": "...", "name": "..."}``) → PSD file (background + object);
* ``/layers``: image file + JSON list of such prompts → PSD file (background + one layer each).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import gradio as gr

from layerkit.app.prompts import prompt_from_json, prompts_from_json
from layerkit.app.render import click_view, display_scale, layer_table, layer_views
from layerkit.app.session import Session, error_message
from layerkit.errors import LayerkitError, PromptError
from layerkit.types import Prompt

log = logging.getLogger("layerkit.app")

MODES = ("object", "not object", "box corners")
HELP = """## layerkit — click an object, get its layer
1. Upload a photo.
2. Click on the object (*A click adds: object*). Click wrong background with *not object* to remove it,
   missed parts with *object* to add them: each click refines the current mask. *box corners*: two
   clicks span a box. A phrase works when the config has a grounder.
3. *New object* starts another layer; reorder, hide, rename and edit layers below.
4. Download the stack as PSD, ORA or a ZIP of PNGs."""


class App:
    """Handlers of the page, bound to one shared pipeline.

    Args:
        pipe: the :class:`~layerkit.pipelines.decompose.Pipeline` every session uses.
    """

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.lock = threading.Lock()
        self.workdir = tempfile.mkdtemp(prefix="layerkit_app_")

    def warm_up(self) -> float:
        """Run the pipeline once on a small synthetic image, so that one-time costs (numba's
        compilation of the matting kernels, lazy imports) are not paid by the first user's click.
        Returns the seconds it took; a failure is logged and ignored (the page reports it later)."""
        import numpy as np

        t0 = time.perf_counter()
        yy, xx = np.mgrid[:64, :64]
        img = np.stack([0.2 + 0.6 * ((xx - 32) ** 2 + (yy - 32) ** 2 < 200), 0.4 + 0 * xx, 0.5 + 0 * yy], axis=2)
        try:
            with self.lock:
                self.pipe(img.astype(np.float32), Prompt(boxes=[[16, 16, 48, 48]]))
        except Exception:  # noqa: BLE001 (a warm-up must never stop the server)
            log.exception("layerkit app: warm-up failed")
        return time.perf_counter() - t0

    # ------------------------------------------------------------------ helpers
    def guard(self, session: Session, action: Callable[[], str | None]) -> tuple[Any, ...]:
        """Run ``action`` under the lock; any error becomes the status line. Returns the page outputs."""
        t0 = time.perf_counter()
        try:
            with self.lock:
                msg = action() or ""
            if "{s}" in msg:
                msg = msg.replace("{s}", f"{time.perf_counter() - t0:.1f} s")
        except Exception as e:  # every error ends in the page, none in a traceback
            if not isinstance(e, LayerkitError):
                log.exception("layerkit app: unexpected error")
            msg = "⚠ " + error_message(e)
            gr.Warning(msg)
        return self.render(session, msg)

    def render(self, session: Session, msg: str) -> tuple[Any, ...]:
        fg, alpha, bg, comp = layer_views(session)
        choices = [f"{i + 1}: {o.name}" for i, o in enumerate(session.objects)]
        value = choices[session.active] if 0 <= session.active < len(choices) else None
        obj = session.objects[session.active] if value else None
        sliders = (obj.dx, obj.dy, obj.scale, obj.hue, obj.brightness) if obj else (0, 0, 1.0, 0.0, 1.0)
        return (session, click_view(session), fg, alpha, bg, comp, layer_table(session),
                gr.update(choices=choices, value=value), obj.name if obj else "", *sliders, msg)

    # ------------------------------------------------------------------ UI handlers
    def upload(self, session: Session, path: str | None) -> tuple[Any, ...]:
        def act() -> str:
            if not path:
                return "Upload a photo to start."
            session.load(path, self.pipe.settings.max_pixels)
            h, w = session.size
            return f"Photo loaded ({w}×{h}). Click on an object."
        return self.guard(session, act)

    def click(self, session: Session, mode: str, evt: Any) -> tuple[Any, ...]:
        def act() -> str:
            session._need_image()
            k = display_scale(session.size)
            x, y = (float(v) / k for v in evt.index[:2])
            h, w = session.size
            x, y = min(x, w - 1), min(y, h - 1)
            if mode == "box corners":
                if not session.corner(self.pipe, x, y):
                    return "First corner set; click the opposite corner."
                return "Layer from the box in {s}."
            session.click(self.pipe, x, y, positive=(mode != "not object"))
            obj = session.current()
            if not obj.ready:
                return "No object yet: click on the object (mode 'object')."
            return f"Layer updated after click {len(obj.clicks)} in {{s}}."
        return self.guard(session, act)

    def phrase(self, session: Session, text: str) -> tuple[Any, ...]:
        return self.guard(session, lambda: (session.phrase(self.pipe, text), "Layer from the phrase in {s}.")[1])

    def undo(self, session: Session) -> tuple[Any, ...]:
        return self.guard(session, lambda: "Undone." if session.undo() else "Nothing to undo.")

    def new_object(self, session: Session) -> tuple[Any, ...]:
        return self.guard(session, lambda: (session.new_object(), "New object: click on it.")[1])

    def delete(self, session: Session) -> tuple[Any, ...]:
        return self.guard(session, lambda: (session.delete(), "Layer deleted.")[1])

    def move_layer(self, session: Session, step: int) -> tuple[Any, ...]:
        return self.guard(session, lambda: (session.move_layer(step), "Layer moved " + ("up." if step > 0 else "down."))[1])

    def toggle(self, session: Session) -> tuple[Any, ...]:
        return self.guard(session, lambda: (session.toggle_visible(), "Visibility changed.")[1])

    def select(self, session: Session, choice: str | None) -> tuple[Any, ...]:
        def act() -> str:
            if choice:
                session.select(int(str(choice).split(":")[0]) - 1)
            return ""
        return self.guard(session, act)

    def rename(self, session: Session, name: str) -> tuple[Any, ...]:
        return self.guard(session, lambda: (session.rename(name), "Layer renamed.")[1])

    def edit(self, session: Session, dx: float, dy: float, scale: float, hue: float, brightness: float) -> tuple[Any, ...]:
        return self.guard(session, lambda: (session.set_edit(dx, dy, scale, hue, brightness), "Edit previewed.")[1])

    def download(self, session: Session, fmt: str) -> tuple[Any, ...]:
        out: list[str | None] = [None]

        def act() -> str:
            out[0] = session.export(fmt, tempfile.mkdtemp(dir=self.workdir))
            return f"{fmt.upper()} ready: {len(session.stack())} layers."
        return (*self.guard(session, act), out[0])

    # ------------------------------------------------------------------ API endpoints
    def _api_file(self, path: Any) -> str:
        if not path:
            raise PromptError("no image file given")
        return str(path)

    def api_decompose(self, image: str, prompt: str) -> str:
        """Image file + prompt JSON → PSD (background + the object)."""
        try:
            p, name = prompt_from_json(prompt)
            with self.lock:
                res = self.pipe(self._api_file(image), p, name=name)
            path = os.path.join(tempfile.mkdtemp(dir=self.workdir), "decomposed.psd")
            res.layers.save(path)
            return path
        except LayerkitError as e:
            raise gr.Error(str(e), print_exception=False) from None

    def api_layers(self, image: str, prompts: str) -> str:
        """Image file + JSON list of prompts → PSD (background + one layer per prompt)."""
        try:
            parsed, names = prompts_from_json(prompts)
            with self.lock:
                stack = self.pipe.layers(self._api_file(image), parsed, names=names)
            path = os.path.join(tempfile.mkdtemp(dir=self.workdir), "layers.psd")
            stack.save(path)
            return path
        except LayerkitError as e:
            raise gr.Error(str(e), print_exception=False) from None


def build_app(pipe: Any, warm_up: bool = True) -> Any:
    """The ``gr.Blocks`` page on ``pipe`` (launch it with ``.launch()``); ``warm_up`` runs
    :meth:`App.warm_up` first."""
    app = App(pipe)
    if warm_up:
        log.info("layerkit app: warm-up took %.1f s", app.warm_up())
    private = {"api_visibility": "private"}
    with gr.Blocks(title="layerkit") as demo:
        state = gr.State(Session(), time_to_live=4 * 3600)  # a session's data goes 4 h after its last update
        gr.Markdown(HELP)
        with gr.Tab("Layers"):
            with gr.Row():
                with gr.Column(scale=3):
                    photo = gr.File(label="Photo", type="filepath", elem_id="photo")
                    mode = gr.Radio(list(MODES), value="object", label="A click adds", elem_id="mode")
                    view = gr.Image(label="Click on the photo", interactive=False, type="numpy", elem_id="view",
                                    format="png")
                    with gr.Row():
                        text = gr.Textbox(label="Phrase (needs a grounder)", elem_id="phrase", scale=3)
                        find = gr.Button("Find", elem_id="find", scale=1)
                    status = gr.Markdown("Upload a photo to start.", elem_id="status")
                with gr.Column(scale=2):
                    small = {"interactive": False, "format": "png", "height": 300}
                    with gr.Row():
                        fg = gr.Image(label="Layer (over a checkerboard)", elem_id="fg", **small)
                        alpha = gr.Image(label="Alpha", elem_id="alpha", **small)
                    with gr.Row():
                        bg = gr.Image(label="Background", elem_id="bg", **small)
                        comp = gr.Image(label="Edited composite", elem_id="comp", **small)
            with gr.Row():
                undo = gr.Button("Undo", elem_id="undo")
                new = gr.Button("New object", elem_id="new")
                delete = gr.Button("Delete layer", elem_id="delete")
                up = gr.Button("Move up", elem_id="up")
                down = gr.Button("Move down", elem_id="down")
                hide = gr.Button("Hide / show", elem_id="hide")
            with gr.Row():
                with gr.Column():
                    layers_md = gr.Markdown(elem_id="layers")
                    active = gr.Dropdown(label="Active layer", choices=[], elem_id="active", interactive=True)
                    with gr.Row():
                        name = gr.Textbox(label="Layer name", elem_id="name", scale=3)
                        rename = gr.Button("Rename", elem_id="rename", scale=1)
                with gr.Column():
                    dx = gr.Slider(-400, 400, value=0, step=1, label="Move x (px)", elem_id="dx")
                    dy = gr.Slider(-400, 400, value=0, step=1, label="Move y (px)", elem_id="dy")
                    scale = gr.Slider(0.2, 3.0, value=1.0, step=0.05, label="Scale", elem_id="scale")
                    hue = gr.Slider(-180, 180, value=0, step=1, label="Hue shift (°)", elem_id="hue")
                    bright = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Brightness", elem_id="brightness")
            with gr.Row():
                fmt = gr.Radio(["psd", "ora", "zip"], value="psd", label="Download as", elem_id="format")
                save = gr.Button("Prepare download", elem_id="save", variant="primary")
                file_out = gr.File(label="Download", elem_id="download", interactive=False)
        with gr.Tab("API"):
            gr.Markdown("Batch calls, also for `gradio_client`: `/decompose` (image + prompt JSON → PSD) and "
                        "`/layers` (image + JSON list of prompts → PSD).")
            api_image = gr.File(label="Image", type="filepath", elem_id="api_image")
            api_prompt = gr.Textbox(label="Prompt JSON", value='{"boxes": [[150, 15, 300, 215]], "name": "head"}',
                                    elem_id="api_prompt")
            with gr.Row():
                api_one = gr.Button("Decompose → PSD", elem_id="api_decompose")
                api_many = gr.Button("Layers → PSD", elem_id="api_layers")
            api_out = gr.File(label="PSD", elem_id="api_out", interactive=False)

        outputs = [state, view, fg, alpha, bg, comp, layers_md, active, name, dx, dy, scale, hue, bright, status]
        photo.change(app.upload, [state, photo], outputs, **private)

        def on_click(session: Session, mode_value: str, evt: gr.SelectData) -> tuple[Any, ...]:
            return app.click(session, mode_value, evt)

        view.select(on_click, [state, mode], outputs, **private)
        find.click(app.phrase, [state, text], outputs, **private)
        text.submit(app.phrase, [state, text], outputs, **private)
        undo.click(app.undo, [state], outputs, **private)
        new.click(app.new_object, [state], outputs, **private)
        delete.click(app.delete, [state], outputs, **private)
        up.click(lambda s: app.move_layer(s, +1), [state], outputs, **private)
        down.click(lambda s: app.move_layer(s, -1), [state], outputs, **private)
        hide.click(app.toggle, [state], outputs, **private)
        active.input(app.select, [state, active], outputs, **private)
        rename.click(app.rename, [state, name], outputs, **private)
        for slider in (dx, dy, scale, hue, bright):
            slider.release(app.edit, [state, dx, dy, scale, hue, bright], outputs, **private)
        save.click(app.download, [state, fmt], [*outputs, file_out], **private)
        api_one.click(app.api_decompose, [api_image, api_prompt], api_out, api_name="decompose")
        api_many.click(app.api_layers, [api_image, api_prompt], api_out, api_name="layers")
    demo.queue(default_concurrency_limit=2)
    return demo
