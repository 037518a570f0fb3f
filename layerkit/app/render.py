"""Pictures the app shows: the click view, a layer over a checkerboard, the layer list.

All outputs are ``uint8`` RGB arrays at display size: the photo scaled so its long side is at
most :data:`DISPLAY_SIDE` (:func:`display_scale`); the UI maps clicks back with that factor.
"""

from __future__ import annotations

import numpy as np

from layerkit.app.session import Session

#: long side of the pictures shown in the page
DISPLAY_SIDE = 800
#: overlay colours per object (RGB), cycled
COLOURS = np.array([[255, 64, 64], [64, 160, 255], [255, 200, 0], [180, 80, 255], [0, 200, 120]], np.float32)


def display_scale(size: tuple[int, int], side: int = DISPLAY_SIDE) -> float:
    """Factor from photo pixels to display pixels (≤ 1) for a ``(height, width)`` photo."""
    return min(1.0, side / max(size))


def _resize(img: np.ndarray, k: float) -> np.ndarray:
    if k >= 1.0:
        return img
    import cv2

    h, w = img.shape[:2]
    return cv2.resize(img, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)


def to_u8(img: np.ndarray) -> np.ndarray:
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


def checkerboard(h: int, w: int, cell: int = 12) -> np.ndarray:
    """``H×W×3`` float grey checkerboard (what transparent areas show)."""
    yy, xx = np.mgrid[:h, :w]
    light = ((yy // cell + xx // cell) % 2).astype(np.float32)
    return np.repeat((0.62 + 0.2 * light)[..., None], 3, axis=2)


def over_checkerboard(rgba: np.ndarray) -> np.ndarray:
    """``H×W×4`` straight RGBA → ``H×W×3`` uint8 over a checkerboard."""
    a = rgba[..., 3:4]
    return to_u8(rgba[..., :3] * a + checkerboard(*rgba.shape[:2]) * (1 - a))


def click_view(session: Session) -> np.ndarray | None:
    """The photo with each object's mask tinted, the active one's outline and clicks drawn."""
    import cv2

    if session.image is None:
        return None
    k = display_scale(session.size)
    out = _resize(session.image, k).copy()
    for i, obj in enumerate(session.objects):
        if obj.mask is None or not obj.visible:
            continue
        m = _resize(obj.mask.astype(np.float32), k) > 0.5
        colour = COLOURS[i % len(COLOURS)] / 255.0
        weight = 0.45 if i == session.active else 0.25
        out[m] = out[m] * (1 - weight) + colour * weight
    view = to_u8(out)
    if 0 <= session.active < len(session.objects):
        obj = session.objects[session.active]
        if obj.mask is not None:
            m = (_resize(obj.mask.astype(np.float32), k) > 0.5).astype(np.uint8)
            contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(view, contours, -1, (255, 255, 255), 2)
        if obj.box is not None:
            x0, y0, x1, y1 = (int(v * k) for v in obj.box)
            cv2.rectangle(view, (x0, y0), (x1, y1), (255, 255, 0), 2)
        for c in obj.clicks:
            centre = (int(c.x * k), int(c.y * k))
            cv2.circle(view, centre, 6, (0, 0, 0), -1)
            cv2.circle(view, centre, 5, (0, 220, 0) if c.positive else (230, 0, 60), -1)
    if session.pending_corner is not None:
        x, y = (int(v * k) for v in session.pending_corner)
        cv2.drawMarker(view, (x, y), (255, 255, 0), cv2.MARKER_CROSS, 16, 2)
    return view


def layer_views(session: Session) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """(active layer over a checkerboard, its alpha, the background, the edited composite) at display size."""
    if session.image is None:
        return None, None, None, None
    k = display_scale(session.size)
    bg = to_u8(_resize(session.background(), k))
    fg = alpha = None
    if 0 <= session.active < len(session.objects) and session.objects[session.active].ready:
        rgba = _resize(session.objects[session.active].rgba, k)  # type: ignore[arg-type]
        fg = over_checkerboard(rgba)
        alpha = np.repeat(to_u8(rgba[..., 3])[..., None], 3, axis=2)
    comp = session.stack().composite() if any(o.ready for o in session.objects) else session.image
    comp = _resize(comp, k)
    comp = over_checkerboard(comp) if comp.shape[2] == 4 else to_u8(comp)
    return fg, alpha, bg, comp


def layer_table(session: Session) -> str:
    """Markdown list of the layers, top first, as they will be saved."""
    if session.image is None:
        return "No photo yet."
    rows = ["| # | layer | state |", "|---|---|---|"]
    for i in range(len(session.objects) - 1, -1, -1):
        o = session.objects[i]
        state = ("visible" if o.visible else "hidden") if o.ready else "no mask yet"
        edits = [f"move {o.dx},{o.dy}" if (o.dx or o.dy) else "", f"scale {o.scale:g}" if o.scale != 1 else "",
                 f"hue {o.hue:g}" if o.hue else "", f"brightness {o.brightness:g}" if o.brightness != 1 else ""]
        extra = ", ".join(e for e in edits if e)
        mark = " ◀ active" if i == session.active else ""
        rows.append(f"| {i + 1} | {o.name}{mark} | {state}{'; ' + extra if extra else ''} |")
    rows.append("| 0 | background | visible |")
    return "\n".join(rows)
