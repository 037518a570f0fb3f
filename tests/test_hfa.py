"""HFA nets, losses, checkpoints and the refiner stage (tiny nets, CPU, no files outside tmp)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from layerkit.errors import ConfigError, MissingModelError
from layerkit.modules.refiner.hfa import HFARefiner
from layerkit.modules.refiner.hfa_nets import (
    GATE_INIT,
    AlignmentNet,
    copy_visible,
    load_checkpoint,
    save_checkpoint,
    transfer_high_bands,
)
from layerkit.training.losses import ban_loss, band_sharpness, bg_psnr_occluded, fg_l1_weighted, high_frequency_loss, masked_mse


def _batch(h: int = 20, w: int = 28, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, h, w, generator=g), torch.rand(2, 1, h, w, generator=g), torch.rand(2, 3, h, w, generator=g)


def test_untrained_net_starts_from_the_estimate() -> None:
    torch.manual_seed(0)
    net = AlignmentNet("background", channels=(4, 8, 8), prior_levels=2)
    c, a, x = _batch(21, 27)  # odd sizes: padded and cropped back
    assert net(c, a, x).shape == x.shape
    c, a, x = _batch(24, 32)
    out = net(c, a, x)
    g = torch.sigmoid(torch.tensor(GATE_INIT))
    expected = x + g * (net.prior(c, a, x) - x)
    assert torch.allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("pool", ["min", "mean"])
def test_prior_matches_the_weight_free_wavelet_refiner(composite: dict, pool: str) -> None:
    from layerkit.modules.refiner.wavelet import transfer_high_frequencies

    img, alpha, bg = composite["image"], composite["alpha"], composite["bg"] * 0.5
    ref = transfer_high_frequencies(bg, img, (1 - alpha)[..., None], 2, pool)

    def t(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]

    ours = transfer_high_bands(t(bg), t(img), t(1 - alpha[..., None]), 2, pool)[0].numpy().transpose(1, 2, 0)
    assert np.allclose(ours, ref, atol=1e-5)


def test_copy_rule() -> None:
    c, a, x = _batch()
    a = (a > 0.5).float()
    f = copy_visible(x, c, a, "foreground")
    b = copy_visible(x, c, a, "background")
    assert torch.equal(f[a.expand_as(f) == 1], c[a.expand_as(c) == 1])
    assert torch.equal(b[a.expand_as(b) == 0], c[a.expand_as(c) == 0])
    with pytest.raises(ValueError, match="layer must be one of"):
        copy_visible(x, c, a, "middle")


def test_net_rejects_bad_shapes() -> None:
    c, a, x = _batch()
    net = AlignmentNet("foreground", channels=(4, 8))
    with pytest.raises(ValueError, match="alpha must be"):
        net(c, a[:, :, :5], x)
    with pytest.raises(ValueError, match="layer must be"):
        AlignmentNet("middle")
    with pytest.raises(ValueError, match="prior_pool must be one of min, mean"):
        AlignmentNet("foreground", prior_pool="max")


def test_losses() -> None:
    c, a, x = _batch()
    assert float(high_frequency_loss(x, x)) == 0.0
    assert float(high_frequency_loss(x, c)) > 0.0
    assert torch.isclose(ban_loss(x, c, x), torch.mean((x - c) ** 2))  # L_H(B, B̂) = 0 when B = B̂
    assert float(ban_loss(x, c, c)) > float(ban_loss(x, c, x))
    zero = torch.zeros_like(a)
    assert float(masked_mse(x, c, zero)) == 0.0
    ones = torch.ones_like(a)
    assert torch.isclose(masked_mse(x, c, ones), torch.mean((x - c) ** 2))
    assert torch.all(bg_psnr_occluded(x, x + 0.1, ones) < bg_psnr_occluded(x, x + 0.01, ones))
    assert torch.allclose(fg_l1_weighted(x, x + 0.1, ones), torch.full((2,), 0.1), atol=1e-5)
    ratio, err = band_sharpness(x, x, a)
    assert torch.allclose(ratio, torch.ones(2)) and torch.all(err > 60)


def _checkpoint(tmp_path: Path, channels: tuple[int, ...] = (4, 8)) -> tuple[str, AlignmentNet, AlignmentNet]:
    torch.manual_seed(0)
    fan, ban = AlignmentNet("foreground", channels), AlignmentNet("background", channels)
    for net in (fan, ban):  # non-trivial weights, so the round trip is meaningful
        torch.nn.init.normal_(net.head.weight, std=0.01)
    path = tmp_path / "hfa.pt"
    save_checkpoint(path, fan, ban, {"note": "test"})
    return str(path), fan, ban


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    path, fan0, ban0 = _checkpoint(tmp_path)
    data = torch.load(path, map_location="cpu", weights_only=True)
    assert data["format"] == "layerkit-hfa-v1" and data["meta"] == {"note": "test"}
    fan, ban, meta = load_checkpoint(path)
    assert fan.layer == "foreground" and ban.layer == "background" and fan.channels == (4, 8)
    assert meta == {"note": "test"}
    c, a, x = _batch()
    with torch.no_grad():
        assert torch.equal(fan(c, a, x), fan0(c, a, x))
        assert torch.equal(ban(c, a, x), ban0(c, a, x))


def test_refiner_stage(tmp_path: Path, composite: dict) -> None:
    ref = HFARefiner(checkpoint=_checkpoint(tmp_path)[0])
    assert ref.missing_weights() == []
    img, alpha = composite["image"], composite["alpha"]
    f, b = ref(img, alpha, composite["fg"] * 0.9, composite["bg"] * 0.9)
    assert f.shape == img.shape and b.shape == img.shape and f.dtype == np.float32
    assert 0.0 <= f.min() and f.max() <= 1.0
    assert np.array_equal(f[alpha >= 0.999], img[alpha >= 0.999])
    assert np.array_equal(b[alpha <= 0.001], img[alpha <= 0.001])


def test_refiner_missing_and_bad_checkpoints(tmp_path: Path, composite: dict) -> None:
    missing = HFARefiner(checkpoint=str(tmp_path / "nope.pt"))
    (line,) = missing.missing_weights()
    assert "refiner.checkpoint" in line and "nope.pt" in line
    with pytest.raises(MissingModelError):
        missing(composite["image"], composite["alpha"], composite["fg"], composite["bg"])
    bad = tmp_path / "bad.pt"
    torch.save({"format": "something-else"}, bad)
    with pytest.raises(ConfigError, match="not a layerkit HFA checkpoint"):
        HFARefiner(checkpoint=str(bad)).nets()


def test_pipeline_reports_missing_hfa_checkpoint(tmp_path: Path) -> None:
    from layerkit.pipelines.decompose import Pipeline

    with pytest.raises(MissingModelError, match="refiner.checkpoint"):
        Pipeline.from_config("classical", {"refiner.backend": "hfa", "refiner.checkpoint": str(tmp_path / "x.pt")})


def test_compare_refiners_on_a_sample_folder(tmp_path: Path) -> None:
    from conftest import make_composite
    from PIL import Image

    from layerkit.modules.refiner.wavelet import WaveletRefiner
    from layerkit.training.compare import compare

    def u8(x: np.ndarray) -> np.ndarray:
        return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)

    for i in range(2):
        c = make_composite(37, 45, seed=i)
        d = tmp_path / f"{i:04d}"
        d.mkdir()
        Image.fromarray(u8(c["image"])).save(d / "composite.png")
        Image.fromarray(u8(c["alpha"])).save(d / "gt_alpha.png")
        Image.fromarray(u8(np.dstack([c["fg"], c["alpha"]])), "RGBA").save(d / "gt_fg.png")
        Image.fromarray(u8(c["bg"])).save(d / "gt_bg.png")
    report = compare(tmp_path, {"none": lambda c, a, f, b: (f, b), "wavelet": WaveletRefiner()}, cache=tmp_path / "cache")
    assert set(report["per_sample"]) == {"0000", "0001"} and len(list((tmp_path / "cache").glob("*.npz"))) == 2
    for name in ("none", "wavelet"):
        m = report["mean"][name]
        assert 10 < m["bg_psnr_occ"] < 80 and 0 <= m["fg_l1"] < 0.2 and np.isfinite(m["bg_band_hf_db"])


def test_checkpoints_without_prior_pool_load_with_the_mean_prior(tmp_path) -> None:
    """Files written before ``prior_pool`` existed were trained with the mean-pooled prior."""
    from layerkit.modules.refiner.hfa_nets import AlignmentNet, load_checkpoint, save_checkpoint

    fan, ban = AlignmentNet("foreground", channels=(4, 8)), AlignmentNet("background", channels=(4, 8))
    assert fan.prior_pool == "min"
    path = tmp_path / "new.pt"
    save_checkpoint(path, fan, ban)
    assert load_checkpoint(path)[0].prior_pool == "min"
    data = torch.load(path, weights_only=True)
    for name in ("fan", "ban"):
        del data[name]["config"]["prior_pool"]
    torch.save(data, tmp_path / "old.pt")
    old_fan, old_ban, _ = load_checkpoint(tmp_path / "old.pt")
    assert old_fan.prior_pool == "mean" and old_ban.prior_pool == "mean"
