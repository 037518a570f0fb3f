"""One user's state in the app: the photo, its objects (clicks, mask, layer, edits) and undo.

Nothing here imports Gradio: the UI (:mod:`layerkit.app.ui`) keeps one :class:`Session` per
browser session in ``gr.State`` and calls these methods; tests and the benchmark call them
directly. The pipeline is shared (stateless between calls); a session never holds another
user's data.

Per object: every click goes through :class:`~layerkit.app.interactive.ClickRefiner` (the first
through the config's segmenter, later ones refining the current mask), then the mask goes
through the pipeline as a mask prompt (trimap, matting, foreground/background, hole filling).
A box or a phrase runs the pipeline's own segmenter; clicks after it refine its mask.
The stack's background is the photo with each object's region replaced by that object's
filled-in background, bottom object first.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from layerkit.app.interactive import Click, ClickRefiner, click_segmenter
from layerkit.errors import EditError, LayerkitError, OutputError, PromptError
from layerkit.types import Layer, LayerStack, Prompt

#: undo steps kept per session at most
MAX_UNDO = 30
#: memory the undo history of one session may hold (bytes); big photos get fewer steps (3 at least)
UNDO_BYTES = 1_500_000_000
#: download formats → file suffix
FORMATS = {"psd": ".psd", "ora": ".ora", "zip": ".zip"}


@dataclass
class ObjectState:
    """One object layer: how it was chosen, its current result and its edits.

    Attributes:
        name: layer name (PSD/ORA/JSON).
        clicks: clicks so far, oldest first.
        box: ``(x0, y0, x1, y1)`` box prompt, if any.
        text: phrase prompt, if any.
        mask: ``H×W`` bool current segmentation, None before the first prompt.
        rgba: ``H×W×4`` straight RGBA layer, None before the first prompt.
        background: ``H×W×3`` the photo with this object removed and filled in.
        visible: shown in the preview and saved visible.
        dx, dy: move in pixels; scale: factor; hue: degrees; brightness: factor.
    """

    name: str
    clicks: list[Click] = field(default_factory=list)
    box: tuple[float, float, float, float] | None = None
    text: str | None = None
    mask: np.ndarray | None = None
    rgba: np.ndarray | None = None
    background: np.ndarray | None = None
    visible: bool = True
    dx: int = 0
    dy: int = 0
    scale: float = 1.0
    hue: float = 0.0
    brightness: float = 1.0

    @property
    def ready(self) -> bool:
        return self.rgba is not None


@dataclass
class Session:
    """The state of one user: the photo, the objects (bottom → top) and the undo history.

    Attributes:
        image: ``H×W×3`` float32 photo in ``[0, 1]``, None before an upload.
        objects: object layers, bottom → top.
        active: index of the object that clicks go to.
        pending_corner: first corner of a box being drawn with two clicks.
    """

    image: np.ndarray | None = None
    objects: list[ObjectState] = field(default_factory=list)
    active: int = -1
    pending_corner: tuple[float, float] | None = None
    history: list[tuple[list[ObjectState], int]] = field(default_factory=list)

    # ---------------------------------------------------------------- photo
    @classmethod
    def from_array(cls, image: np.ndarray) -> Session:
        """A session on an ``H×W×3`` float photo in ``[0, 1]``."""
        return cls(image=np.ascontiguousarray(image, np.float32))

    def load(self, path: str | os.PathLike, max_pixels: int | None) -> None:
        """Replace the photo (and drop every object) with the image at ``path``.

        Raises:
            InputImageError: not an image, truncated, too small or above ``max_pixels``.
        """
        from layerkit.io.image import load_image

        image = load_image(path, max_pixels=max_pixels)
        self.image, self.objects, self.active, self.pending_corner, self.history = image, [], -1, None, []

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of the photo."""
        self._need_image()
        return self.image.shape[0], self.image.shape[1]  # type: ignore[union-attr]

    def _need_image(self) -> None:
        if self.image is None:
            raise PromptError("upload a photo first")

    # ---------------------------------------------------------------- undo
    def _snapshot(self) -> None:
        # shallow copies: every update replaces an object's arrays (never writes into them), so
        # snapshots share the arrays that did not change
        self.history.append(([copy.copy(o) for o in self.objects], self.active))
        del self.history[:-self.undo_limit()]

    def undo_limit(self) -> int:
        """Undo steps kept: :data:`MAX_UNDO`, fewer when one step's layer (RGBA, background and
        mask of a photo this size) would exceed :data:`UNDO_BYTES` over all steps."""
        if self.image is None:
            return MAX_UNDO
        h, w = self.image.shape[:2]
        return int(min(MAX_UNDO, max(3, UNDO_BYTES // (h * w * (16 + 12 + 1)))))

    def undo(self) -> bool:
        """Go back one step (click, prompt, new/delete/reorder object, edit); False if nothing to undo."""
        if not self.history:
            return False
        self.objects, self.active = self.history.pop()
        self.pending_corner = None
        return True

    # ---------------------------------------------------------------- objects
    def current(self) -> ObjectState:
        """The active object, created when there is none."""
        self._need_image()
        if not self.objects:
            self.objects.append(ObjectState(name=self._free_name()))
            self.active = 0
        return self.objects[self.active]

    def _free_name(self) -> str:
        names = {o.name for o in self.objects}
        i = 1
        while f"object {i}" in names:
            i += 1
        return f"object {i}"

    def new_object(self) -> None:
        """Start a new object layer on top; the next clicks go to it."""
        self._need_image()
        if self.objects and not self.objects[-1].ready:
            self.active = len(self.objects) - 1  # reuse the empty one
            return
        self._snapshot()
        self.objects.append(ObjectState(name=self._free_name()))
        self.active = len(self.objects) - 1

    def select(self, index: int) -> None:
        if not 0 <= index < len(self.objects):
            raise EditError(f"no object {index + 1}; there are {len(self.objects)}")
        self.active, self.pending_corner = index, None

    def delete(self) -> None:
        """Remove the active object."""
        if not self.objects:
            raise EditError("no object to delete")
        self._snapshot()
        del self.objects[self.active]
        self.active = min(self.active, len(self.objects) - 1)

    def move_layer(self, step: int) -> None:
        """Move the active object ``step`` places up (+) or down (−) in the stack."""
        if not self.objects:
            raise EditError("no object to reorder")
        j = min(max(self.active + step, 0), len(self.objects) - 1)
        if j == self.active:
            return
        self._snapshot()
        self.objects.insert(j, self.objects.pop(self.active))
        self.active = j

    def rename(self, name: str) -> None:
        name = name.strip()
        if not name or name == "background":
            raise EditError("a layer name must be non-empty and not 'background'")
        if any(o.name == name for i, o in enumerate(self.objects) if i != self.active):
            raise EditError(f"another layer is already named {name!r}")
        self._snapshot()
        self.current().name = name

    def toggle_visible(self) -> None:
        if not self.objects:
            raise EditError("no object to hide or show")
        self._snapshot()
        obj = self.current()
        obj.visible = not obj.visible

    def set_edit(self, dx: float, dy: float, scale: float, hue: float, brightness: float) -> None:
        """Set the active object's move / scale / hue / brightness (applied in previews and downloads)."""
        if not self.objects or not self.current().ready:
            raise EditError("no object to edit: click on an object first")
        if scale <= 0 or brightness < 0:
            raise EditError(f"scale must be > 0 and brightness >= 0, got {scale} and {brightness}")
        obj = self.current()
        new = (int(round(dx)), int(round(dy)), float(scale), float(hue), float(brightness))
        if new != (obj.dx, obj.dy, obj.scale, obj.hue, obj.brightness):
            self._snapshot()
            obj.dx, obj.dy, obj.scale, obj.hue, obj.brightness = new

    # ---------------------------------------------------------------- prompts
    def click(self, pipe: Any, x: float, y: float, positive: bool = True) -> None:
        """Add a click (object or not-object) to the active object and update its layer.

        Raises:
            PromptError: no photo, or a click outside it.
        """
        h, w = self.size
        if not (0 <= x < w and 0 <= y < h):
            raise PromptError(f"click ({x:g}, {y:g}) is outside the {w}x{h} photo")
        obj = self.current()
        self._snapshot()
        try:
            clicks = [*obj.clicks, Click(float(x), float(y), bool(positive))]
            refiner = ClickRefiner(click_segmenter(pipe.segmenter))
            mask = refiner(self.image, clicks, obj.mask)  # type: ignore[arg-type]
            obj.clicks = clicks
            if not mask.any():
                obj.mask, obj.rgba, obj.background = None, None, None
                return
            self._run(pipe, obj, Prompt(mask=mask))
        except BaseException:
            self.undo()
            raise

    def corner(self, pipe: Any, x: float, y: float) -> bool:
        """Box by two clicks: the first stores a corner, the second runs the box; True when run."""
        h, w = self.size
        if not (0 <= x < w and 0 <= y < h):
            raise PromptError(f"click ({x:g}, {y:g}) is outside the {w}x{h} photo")
        if self.pending_corner is None:
            self.pending_corner = (float(x), float(y))
            return False
        (ax, ay), self.pending_corner = self.pending_corner, None
        x0, x1 = sorted((ax, float(x)))
        y0, y1 = sorted((ay, float(y)))
        self.box(pipe, (x0, y0, min(w, x1 + 1), min(h, y1 + 1)))
        return True

    def box(self, pipe: Any, box: tuple[float, float, float, float]) -> None:
        """Segment the active object from a box (replaces its clicks)."""
        self._prompted(pipe, Prompt(boxes=[list(box)]), box=tuple(box))

    def phrase(self, pipe: Any, text: str) -> None:
        """Segment the active object from a phrase (needs a grounder in the config)."""
        if not text or not text.strip():
            raise PromptError("type a phrase naming the object first")
        self._prompted(pipe, Prompt(text=text), text=text.strip())

    def _prompted(self, pipe: Any, prompt: Prompt, box: Any = None, text: str | None = None) -> None:
        obj = self.current()
        if obj.ready:  # a box or a phrase starts a new object rather than overwriting one
            self.new_object()
            obj = self.current()
        self._snapshot()
        try:
            obj.clicks, obj.box, obj.text = [], box, text
            self._run(pipe, obj, prompt)
            if text and obj.name.startswith("object "):
                obj.name = self._unique(text)
        except BaseException:
            self.undo()
            raise

    def _unique(self, name: str) -> str:
        names = {o.name for o in self.objects}
        out, i = name, 2
        while out in names:
            out, i = f"{name} {i}", i + 1
        return out

    def _run(self, pipe: Any, obj: ObjectState, prompt: Prompt) -> None:
        res = pipe(self.image, prompt, name=obj.name)
        obj.mask = np.asarray(res.mask, bool)
        obj.rgba = np.asarray(res.foreground, np.float32)
        obj.background = np.asarray(res.background, np.float32)

    # ---------------------------------------------------------------- output
    def background(self) -> np.ndarray:
        """``H×W×3`` the photo with every object removed (each region from its own fill-in)."""
        self._need_image()
        out = self.image.copy()  # type: ignore[union-attr]
        for obj in self.objects:
            if obj.ready:
                region = obj.rgba[..., 3] > 0  # type: ignore[index]
                out[region] = obj.background[region]  # type: ignore[index]
        return out

    def stack(self, edited: bool = True) -> LayerStack:
        """The layer stack (background + every ready object, bottom → top) with edits applied.

        Raises:
            EditError: nothing to stack yet.
        """
        self._need_image()
        layers = [Layer.from_rgb(self.background(), name="background")]
        ready = [o for o in self.objects if o.ready]
        layers += [Layer(o.rgba, name=o.name, visible=o.visible) for o in ready]  # type: ignore[arg-type]
        stack = LayerStack(layers)
        if edited:
            for i, o in enumerate(ready, start=1):
                if o.scale != 1.0:
                    stack = stack.scale(i, o.scale)
                if o.dx or o.dy:
                    stack = stack.move(i, o.dx, o.dy)
                if o.hue or o.brightness != 1.0:
                    stack = stack.recolor(i, hue=o.hue, brightness=o.brightness)
        return stack

    def export(self, fmt: str, folder: str | os.PathLike | None = None) -> str:
        """Write the edited stack as ``psd``, ``ora`` or ``zip`` (of PNGs); returns the file path.

        Raises:
            OutputError: unknown format, or no object layer yet.
        """
        fmt = fmt.lower().lstrip(".")
        if fmt not in FORMATS:
            raise OutputError(f"unknown download format {fmt!r}; use psd, ora or zip")
        if not any(o.ready for o in self.objects):
            raise OutputError("nothing to download yet: click on an object first")
        folder = tempfile.mkdtemp(prefix="layerkit_app_") if folder is None else str(folder)
        stack = self.stack()
        path = os.path.join(folder, "layers" + FORMATS[fmt])
        if fmt == "zip":
            pngs = os.path.join(folder, "layers")
            stack.save(pngs, overwrite=True)
            shutil.make_archive(pngs, "zip", pngs)
            shutil.rmtree(pngs)
        else:
            stack.save(path, overwrite=True)
        return path


def error_message(exc: BaseException) -> str:
    """One line for the page: a :class:`LayerkitError`'s own text, else the exception's type and text."""
    if isinstance(exc, LayerkitError):
        return str(exc)
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"internal error ({type(exc).__name__}{': ' + text if text else ''}); the page still works, try again"
