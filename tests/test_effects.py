"""The effects stage (shadow / reflection into the object's layer) on scenes made in code."""

from __future__ import annotations

import numpy as np
import pytest

from layerkit.errors import ConfigError
from layerkit.evaluation.effects_data import cast_shadow, over_premul, reflect
from layerkit.modules.effects.shadow_reflection import ShadowReflectionEffects
from layerkit.ops.compositing import psnr
from layerkit.ops.inpainting import inpaint
from layerkit.registry import build


def _ground(h: int, w: int, seed: int = 0, smooth: bool = False) -> np.ndarray:
    """A light, textured ground (or a smooth glossy one)."""
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    base = np.stack([0.62 + 0.1 * xx / w, 0.58 + 0.05 * yy / h, 0.5 + 0.0 * xx], axis=2)
    if not smooth:
        base = base + 0.05 * cv2.GaussianBlur(rng.normal(0, 1, (h, w, 3)).astype(np.float32), (0, 0), 1.5)
    return np.clip(base, 0, 1).astype(np.float32)


def _planks(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A strongly textured wooden floor: wavy planks and grain (±25 % luminance)."""
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    planks = 0.5 + 0.5 * np.sin(2 * np.pi * (yy + 3 * np.sin(xx / 23.0)) / 11.0)
    base = np.stack([0.55 + 0.15 * planks, 0.42 + 0.12 * planks, 0.3 + 0.06 * planks], axis=2)
    grain = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.2)
    return np.clip(base * (1 + 0.25 * grain[..., None]), 0, 1).astype(np.float32)


def _object(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    d = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    alpha = np.clip((1.0 - d) * 12.0, 0, 1).astype(np.float32)
    rgb = np.stack([0.85 + 0 * xx, 0.25 + 0.3 * yy / h, 0.2 + 0 * xx], axis=2).astype(np.float32)
    return rgb, alpha


def egg_shadow_scene(seed: int = 49, h: int = 160, w: int = 200, ground: np.ndarray | None = None,
                     egg: tuple[float, float, float, float] = (70, 120, 30, 16)) -> dict:
    """An egg (``egg``: centre row, column, radii; :func:`_object`) on textured ground (or ``ground``) with the
    dataset maker's cast shadow: ``image``, ``ground``, ``rgb``, ``alpha`` (the object's), ``shadow``, ``params``
    (the shadow's) and ``gt_layer`` (object + shadow, RGBA)."""
    ground = _ground(h, w) if ground is None else ground
    rgb, alpha = _object(h, w, *egg)
    shadow, params = cast_shadow(alpha.astype(np.float64), np.random.default_rng(seed))
    f, a = over_premul(rgb.astype(np.float64), alpha.astype(np.float64), np.zeros((h, w, 3)), shadow)
    image = (a[..., None] * f + (1 - a[..., None]) * ground).astype(np.float32)
    return {"image": image, "ground": ground, "rgb": rgb, "alpha": alpha, "shadow": shadow, "params": params,
            "gt_layer": np.dstack([f, a]).astype(np.float32)}


def _background_guess(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """What the decomposer hands the stage: the image with the object's region inpainted."""
    b = inpaint(np.where((alpha <= 0)[..., None], image, 0), alpha > 0.5)
    return np.where(((alpha > 0) & (alpha < 0.5))[..., None], image, b).astype(np.float32)


@pytest.fixture
def shadow_scene() -> dict[str, np.ndarray]:
    h, w = 160, 200
    ground = _ground(h, w)
    rgb, alpha = _object(h, w, 70, 120, 30, 16)
    shadow, params = cast_shadow(alpha.astype(np.float64), np.random.default_rng(49))  # cast left and back
    assert params["strength"] > 0.4 and (shadow * (alpha < 0.5)).sum() > 0.1 * alpha.sum()
    f, a = over_premul(rgb.astype(np.float64), alpha.astype(np.float64), np.zeros((h, w, 3)), shadow)
    image = (a[..., None] * f + (1 - a[..., None]) * ground).astype(np.float32)
    return {"image": image, "alpha": alpha, "rgb": rgb, "ground": ground, "shadow": shadow.astype(np.float32),
            "layer_alpha": a.astype(np.float32)}


def test_shadow_moves_into_the_layer_and_the_ground_is_cleaned(shadow_scene):
    s = shadow_scene
    stage = ShadowReflectionEffects(effects=("shadow",))
    b0 = _background_guess(s["image"], s["alpha"])
    a, f, b = stage(s["image"], s["alpha"], s["rgb"], b0)
    assert [e.kind for e in stage.last] == ["shadow"]
    region = (s["shadow"] > 0.05) & (s["alpha"] < 0.5)
    before, after = psnr(b0, s["ground"], region), psnr(b, s["ground"], region)
    assert after > before + 6.0, (before, after)
    # the layer now carries the shadow: alpha mass near the GT layer's
    assert a.sum() > s["alpha"].sum() + 0.5 * s["shadow"][region].sum()
    # shadow pixels are black (what keeps a recolour off them)
    far = region & (s["alpha"] == 0) & (a > 0.05)
    assert far.any() and float(f[far].max()) == 0.0
    # the stack still recomposes the input where the decomposer's stack did
    rec = a[..., None] * f + (1 - a[..., None]) * b
    rec0 = s["alpha"][..., None] * s["rgb"] + (1 - s["alpha"][..., None]) * b0
    assert psnr(rec, rec0) > 50.0


def test_the_fitted_penumbra_is_traced_in_full_resolution_pixels():
    sc = egg_shadow_scene()
    image, rgb, alpha, params = sc["image"], sc["rgb"], sc["alpha"], sc["params"]
    stage = ShadowReflectionEffects(effects=("shadow",))
    stage(image, alpha, rgb, _background_guess(image, alpha))
    s0, s1 = stage.trace["shadow_sigma0"], stage.trace["shadow_sigma1"]
    true0, true1 = params["sigma"]
    assert 0.0 < s0 <= s1, (s0, s1)
    # the far end's blur within a factor 2 of the generator's (benchmarks/effects_ceiling.py reads it)
    assert 0.5 * true1 < s1 < 2.0 * true1, (s1, true1, s0, true0)


def test_no_effect_on_a_plain_cut_out():
    h, w = 160, 200
    ground = _ground(h, w, seed=5)
    rgb, alpha = _object(h, w, 70, 100, 30, 20)
    image = (alpha[..., None] * rgb + (1 - alpha[..., None]) * ground).astype(np.float32)
    stage = ShadowReflectionEffects()
    b0 = _background_guess(image, alpha)
    a, f, b = stage(image, alpha, rgb, b0)
    assert stage.last == []
    np.testing.assert_array_equal(a, alpha)
    np.testing.assert_array_equal(b, b0)


def test_reflection_on_a_smooth_surface():
    h, w = 180, 160
    ground = _ground(h, w, smooth=True)
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    rgb, alpha = _object(h, w, 55, 80, 30, 22)
    rgb = np.stack([0.2 + 0.6 * (xx / w), 0.3 + 0.5 * ((yy % 16) < 8), 0.8 - 0.5 * (xx / w)], axis=2).astype(np.float32)
    r_rgb, r_a, _ = reflect(rgb.astype(np.float64), alpha.astype(np.float64), np.random.default_rng(1))
    f, a = over_premul(rgb.astype(np.float64), alpha.astype(np.float64), r_rgb, r_a)
    image = (a[..., None] * f + (1 - a[..., None]) * ground).astype(np.float32)
    stage = ShadowReflectionEffects()
    b0 = _background_guess(image, alpha)
    a2, f2, b2 = stage(image, alpha, rgb, b0)
    assert "reflection" in [e.kind for e in stage.last]
    region = (r_a > 0.05) & (alpha < 0.5)
    assert psnr(b2, ground, region) > psnr(b0, ground, region) + 10.0  # measured 27.4 -> 42.9 dB
    rec = a2[..., None] * f2 + (1 - a2[..., None]) * b2
    rec0 = alpha[..., None] * rgb + (1 - alpha[..., None]) * b0  # the stack the stage was given
    assert psnr(rec, rec0) > 45.0


def test_empty_alpha_is_returned_unchanged():
    stage = ShadowReflectionEffects()
    img = np.full((32, 32, 3), 0.5, np.float32)
    a, f, b = stage(img, np.zeros((32, 32), np.float32), np.zeros_like(img), img)
    assert stage.last == [] and not a.any()


def test_bad_keys_fail_with_one_line():
    with pytest.raises(ConfigError, match="unknown kind"):
        build("effects", "shadow_reflection", {"effects": ["smoke"]})
    with pytest.raises(ConfigError, match="work_side"):
        build("effects", "shadow_reflection", {"work_side": 2})
    with pytest.raises(ConfigError, match="ripple and contact"):
        build("effects", "shadow_reflection", {"contact": -1})
    with pytest.raises(ConfigError, match="max_out_of_range"):
        build("effects", "shadow_reflection", {"max_out_of_range": 2})
    with pytest.raises(ConfigError, match="chroma_noise is a number of spreads"):
        build("effects", "shadow_reflection", {"chroma_noise": -1})
    with pytest.raises(ConfigError, match="unknown key 'effects.strength'"):
        build("effects", "shadow_reflection", {"strength": 1})


def _high_pass(x: np.ndarray) -> np.ndarray:
    import cv2

    y = x.mean(axis=2)
    return y - cv2.GaussianBlur(y, (0, 0), 3.0)


def planks_shadow_scene(seed: int, h: int = 160, w: int = 200) -> tuple[np.ndarray, ...]:
    """An egg over wooden planks with the dataset maker's cast shadow: ``(image, ground, rgb,
    alpha, shadow alpha, shadow parameters)`` (also the figure of ``benchmarks/effects_figure.py``)."""
    sc = egg_shadow_scene(seed, h, w, ground=_planks(h, w, seed))
    return sc["image"], sc["ground"], sc["rgb"], sc["alpha"], sc["shadow"], sc["params"]


@pytest.mark.parametrize("seed", [49, 3, 11])
def test_shadow_on_textured_ground_is_found_and_divided_out(seed: int) -> None:
    h, w = 160, 200
    image, ground, rgb, alpha, shadow, params = planks_shadow_scene(seed, h, w)
    stage = ShadowReflectionEffects(effects=("shadow",))
    b0 = _background_guess(image, alpha)
    a2, f2, b2 = stage(image, alpha, rgb, b0)
    assert [e.kind for e in stage.last] == ["shadow"], stage.trace
    t = stage.trace  # the light direction and the darkening are recovered
    assert abs(t["shadow_sx"] - params["sx"]) < 0.15 and abs(t["shadow_sy"] - params["sy"]) < 0.05, (t, params)
    assert abs(t["shadow_darkening"] - params["strength"]) < 0.15, (t, params)
    region = (shadow > 0.05) & (alpha < 0.5)
    before, after = psnr(b0, ground, region), psnr(b2, ground, region)
    assert after > before + 8.0, (before, after)  # measured +12.2 to +15.7 dB
    # the texture stays (divided by a smooth field, not blurred): fine detail as the true ground's
    far = region & (_high_pass(np.dstack([alpha] * 3)) == 0) & (alpha == 0)  # clear of the object's edges
    # measured: correlation 0.98-0.99, detail 0.92-1.03 of the true ground's
    hp, hp_gt = _high_pass(b2)[far], _high_pass(ground)[far]
    assert np.corrcoef(hp, hp_gt)[0, 1] > 0.9 and hp.std() > 0.8 * hp_gt.std()
    # the ground under the object was filled again from the cleaned ground, and the stack recomposes
    assert stage.last[0].refilled is not None and stage.last[0].refilled[alpha > 0.5].all()
    rec = a2[..., None] * f2 + (1 - a2[..., None]) * b2
    rec0 = alpha[..., None] * rgb + (1 - alpha[..., None]) * b0
    assert psnr(rec, rec0) > 45.0


def _soft_shadow_case(seed: int, h: int, w: int, egg: tuple[float, float, float, float]) -> tuple:
    """:func:`egg_shadow_scene` on the ground of ``seed`` → ``(image, ground, rgb, alpha, the background the
    decomposer hands the stage, the shadow's region outside the object, the shadow's params)``."""
    s = egg_shadow_scene(seed, h, w, _ground(h, w, seed), egg)
    region = (s["shadow"] > 0.05) & (s["alpha"] < 0.5)
    return (s["image"], s["ground"], s["rgb"], s["alpha"], _background_guess(s["image"], s["alpha"]), region,
            s["params"])


def _off_and_on(case: tuple, option: str) -> dict[bool, tuple[float, dict]]:
    """The shadow stage with ``option`` false and true on a :func:`_soft_shadow_case` → ``{value: (PSNR of the
    cleaned ground in the shadow's region, the stage's trace)}``; each run must find the one shadow."""
    image, ground, rgb, alpha, b0, region, _ = case
    out = {}
    for on in (False, True):
        stage = ShadowReflectionEffects(effects=("shadow",), **{option: on})
        b = stage(image, alpha, rgb, b0)[2]
        assert [e.kind for e in stage.last] == ["shadow"], (option, on, stage.trace)
        out[on] = (psnr(b, ground, region), dict(stage.trace))
    return out


def test_polish_refines_the_direction_of_a_soft_shadow() -> None:
    """The matched filter weighs the sharp near end of a shadow; the fit of the whole model
    (strength, fade, penumbra growing with the distance) corrects the direction, and the cleaned
    ground gets closer to the true one (measured on these seeds: +1.3 to +4.2 dB, sx within 0.04)."""
    h, w = 200, 260
    gains = []
    for seed in (0, 2, 5, 6):
        case = _soft_shadow_case(seed, h, w, (80, 130, 45, 20))
        res = _off_and_on(case, "polish")
        assert abs(res[True][1]["shadow_sx"] - case[-1]["sx"]) < 0.06, (seed, res, case[-1])
        gains.append(res[True][0] - res[False][0])
    assert min(gains) > 0.5 and float(np.mean(gains)) > 1.5, gains


def test_a_thin_shadow_without_an_inner_core_gets_its_strength_from_the_whole_region() -> None:
    """A pole's shadow is thinner than its penumbra: the fitted soft mask never reaches the core
    level, so the strength cannot be matched again on an inner core. The fit of the whole region
    (each material most uniform once the shadow is divided out) replaces the first, outline-blurred
    match (measured on these seeds: strength 0.16–0.29 → 0.30–0.60 for true 0.30–0.63, +8.7 to +11.0 dB)."""
    h, w = 200, 260
    for seed in (1, 2, 4, 7):
        case = _soft_shadow_case(seed, h, w, (90, 130, 55, 5))
        res = _off_and_on(case, "region_fallback")
        (p_off, t_off), (p_on, t_on), true = res[False], res[True], case[-1]["strength"]
        assert t_on.get("shadow_region_fit") == 1.0 and "shadow_region_fit" not in t_off, res
        assert abs(t_on["shadow_darkening"] - true) < abs(t_off["shadow_darkening"] - true), (seed, res, true)
        assert p_on > p_off + 3.0, (seed, res)


def test_no_shadow_on_a_plain_cut_out_over_texture() -> None:
    h, w = 160, 200
    ground = _planks(h, w, 5)
    rgb, alpha = _object(h, w, 70, 120, 30, 16)
    image = (alpha[..., None] * rgb + (1 - alpha[..., None]) * ground).astype(np.float32)
    stage = ShadowReflectionEffects()
    b0 = _background_guess(image, alpha)
    a, f, b = stage(image, alpha, rgb, b0)
    assert stage.last == []
    np.testing.assert_array_equal(b, b0)


def test_a_dark_neighbour_of_another_colour_is_not_a_shadow() -> None:
    """A dark blue-grey patch where the shadow would be (a dark object, not a darkening)."""
    h, w = 160, 200
    ground = _planks(h, w, 49)
    rgb, alpha = _object(h, w, 70, 120, 30, 16)
    shadow, _ = cast_shadow(alpha.astype(np.float64), np.random.default_rng(49))
    patch = np.clip(shadow / shadow.max(), 0, 1)[..., None].astype(np.float32)
    ground = ground * (1 - patch) + patch * np.array([0.12, 0.16, 0.3], np.float32) * (ground / ground.mean())
    image = (alpha[..., None] * rgb + (1 - alpha[..., None]) * ground).astype(np.float32)
    stage = ShadowReflectionEffects(effects=("shadow",))
    stage(image, alpha, rgb, _background_guess(image, alpha))
    assert stage.last == [], stage.trace


def _water(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A water-like ground: blue-green with horizontal wave streaks and fine noise (±15 %)."""
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    waves = np.sin(2 * np.pi * (yy + 2 * np.sin(xx / 17.0)) / 7.0)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.0)
    base = np.stack([0.2 + 0.0 * xx, 0.4 + 0.1 * yy / h, 0.55 + 0.0 * xx], axis=2)
    return np.clip(base * (1 + 0.08 * waves[..., None] + 0.07 * noise[..., None]), 0, 1).astype(np.float32)


def _striped_object(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured object: an ellipse with red / yellow / white bands and a vertical gradient."""
    rgb, alpha = _object(h, w, 60, 90, 34, 24)
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    band = ((yy // 9) % 3).astype(int)
    colours = np.array([[0.9, 0.15, 0.1], [0.95, 0.85, 0.2], [0.95, 0.95, 0.95]], np.float32)
    rgb = colours[band] * (0.7 + 0.3 * (xx / w))[..., None]
    return rgb.astype(np.float32), alpha


@pytest.mark.parametrize("seed", [1, 4, 7])
def test_reflection_on_water_is_found_and_removed(seed: int) -> None:
    """A flipped, attenuated, rippled copy (the dataset maker's) of a textured object on water."""
    h, w = 200, 180
    ground = _water(h, w, seed)
    rgb, alpha = _striped_object(h, w)
    r_rgb, r_a, params = reflect(rgb.astype(np.float64), alpha.astype(np.float64), np.random.default_rng(seed))
    f, a = over_premul(rgb.astype(np.float64), alpha.astype(np.float64), r_rgb, r_a)
    image = (a[..., None] * f + (1 - a[..., None]) * ground).astype(np.float32)
    stage = ShadowReflectionEffects(effects=("shadow", "reflection"))
    b0 = _background_guess(image, alpha)
    a2, f2, b2 = stage(image, alpha, rgb, b0)
    assert [e.kind for e in stage.last] == ["reflection"], stage.trace
    t = stage.trace  # the mirror explains far more than the null placements; strength recovered
    # measured: explained 0.81-0.91 vs null 0.54-0.60; strength within 0.02 of the truth
    assert t["reflection_explained"] - t["reflection_null"] > 0.2, t
    assert abs(t["reflection_s"] - params["strength"]) < 0.1, (t, params)
    region = (r_a > 0.05) & (alpha < 0.5)
    before, after = psnr(b0, ground, region), psnr(b2, ground, region)
    assert after > before + 10.0, (before, after)  # measured 20.7-22.5 -> 35.4-36.1 dB
    # the layer carries the reflection: alpha mass close to the GT reflection's (measured ×0.99-1.01)
    gained = float((a2 - alpha).sum())
    assert 0.85 * r_a.sum() < gained < 1.15 * r_a.sum(), (gained, r_a.sum())
    rec = a2[..., None] * f2 + (1 - a2[..., None]) * b2
    rec0 = alpha[..., None] * rgb + (1 - alpha[..., None]) * b0
    assert psnr(rec, rec0) > 45.0


@pytest.mark.parametrize("structure", ["translated_copy", "bands"])
def test_no_reflection_from_structure_that_is_not_mirrored(structure: str) -> None:
    """Below the object: its copy *not* flipped (a repeated pattern), or horizontal colour bands."""
    h, w = 200, 180
    ground = _water(h, w, 3)
    rgb, alpha = _striped_object(h, w)
    yy = np.mgrid[:h, :w][0]
    if structure == "translated_copy":
        shift = 67  # the object's box height (65 rows) + 2: the copy starts just below it
        ca, cf = np.roll(alpha, shift, axis=0) * 0.45, np.roll(rgb, shift, axis=0)
        ca[:shift] = 0
        ground = (1 - ca[..., None]) * ground + ca[..., None] * cf
    else:
        band = ((yy >= 96) & (((yy - 96) // 12) % 2 == 0))[..., None]
        ground = np.where(band, ground * 0.6 + 0.4 * np.array([0.9, 0.8, 0.3], np.float32), ground)
    ground = ground.astype(np.float32)
    image = (alpha[..., None] * rgb + (1 - alpha[..., None]) * ground).astype(np.float32)
    stage = ShadowReflectionEffects(effects=("reflection",))
    b0 = _background_guess(image, alpha)
    a, f, b = stage(image, alpha, rgb, b0)
    assert stage.last == [], stage.trace
    np.testing.assert_array_equal(a, alpha)
