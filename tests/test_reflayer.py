"""RefLayer: tiny random model parts saved and loaded back, the decomposer stage, the prompt canvas,
missing weights, training (overfit one batch, fast_dev_run, export → stage), triplet data and make-dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from layerkit.errors import ConfigError, DataError, MissingModelError
from layerkit.types import Prompt

TINY_TRANSFORMER = {"sample_size": 8, "patch_size": 2, "num_layers": 1, "attention_head_dim": 8, "num_attention_heads": 2,
                    "joint_attention_dim": 8, "caption_projection_dim": 16, "pooled_projection_dim": 8,
                    "pos_embed_max_size": 32}


def tiny_vae() -> torch.nn.Module:
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(block_out_channels=(4, 8), latent_channels=4, norm_num_groups=2,
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)


def tiny_text(root: Path) -> tuple[torch.nn.Module, object]:
    """A tiny CLIPTextModelWithProjection and tokenizer, saved under ``root/text_encoder`` and ``root/tokenizer``."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer

    root.mkdir(parents=True, exist_ok=True)
    (root / "vocab.json").write_text(json.dumps({"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2, "a</w>": 3, "cat</w>": 4}))
    (root / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(root / "vocab.json"), str(root / "merges.txt"), model_max_length=8, pad_token="!")
    torch.manual_seed(1)
    enc = CLIPTextModelWithProjection(CLIPTextConfig(vocab_size=5, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                                     num_attention_heads=2, max_position_embeddings=8, projection_dim=8,
                                                     bos_token_id=0, eos_token_id=1, pad_token_id=2))
    tok.save_pretrained(root / "tokenizer")
    enc.save_pretrained(root / "text_encoder")
    return enc, tok


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    from layerkit.modules.decomposer.reflayer_nets import RefLayerModel

    enc, tok = tiny_text(tmp_path / "clip")
    torch.manual_seed(0)
    return RefLayerModel.from_scratch(tiny_vae(), TINY_TRANSFORMER, enc, tok, text_tokens=8).save_pretrained(tmp_path / "m")


def test_save_and_load_round_trip_every_part(model_dir: Path) -> None:
    from layerkit.modules.decomposer.reflayer_nets import RefLayerModel

    a = RefLayerModel.from_pretrained(str(model_dir))
    b = RefLayerModel.from_pretrained(str(model_dir))
    assert a.text_encoder is not None and a.alpha_decoder.decoder.conv_out.out_channels == 1
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        cond = torch.cat([a.encode(x), a.encode(x)], 1)
        text = a.encode_text(["a cat", None], "cpu")
        assert not torch.equal(text[0][0], text[0][1])                      # the text changes the embedding
        lat = torch.randn(1, 4, 8, 8)
        va = a.predict(lat, torch.tensor([0.5]), cond, (text[0][:1], text[1][:1]))
        vb = b.predict(lat, torch.tensor([0.5]), cond, (text[0][:1], text[1][:1]))
        rgb, alpha = a.decode(lat)
    assert torch.equal(va, vb) and va.shape == lat.shape
    assert rgb.shape == (1, 3, 16, 16) and alpha.shape == (1, 1, 16, 16) and 0 <= float(alpha.min()) <= float(alpha.max()) <= 1


def test_alpha_decoder_copies_the_vae_decoder() -> None:
    from layerkit.modules.decomposer.reflayer_nets import AlphaDecoder

    vae = tiny_vae()
    dec = AlphaDecoder.from_vae(vae)
    assert torch.equal(dec.decoder.up_blocks[0].resnets[0].conv1.weight, vae.decoder.up_blocks[0].resnets[0].conv1.weight)
    assert torch.allclose(dec.decoder.conv_out.weight[0], vae.decoder.conv_out.weight.mean(0))


def test_decomposer_layer_and_stage_call(model_dir: Path) -> None:
    from layerkit.modules.decomposer.reflayer import RefLayerDecomposer

    dec = RefLayerDecomposer(model=str(model_dir), steps=2, resolution=0)
    assert dec.missing_weights() == []
    img = np.random.default_rng(0).random((30, 34, 3)).astype(np.float32)
    rgba = dec.layer(img, Prompt(text="a cat", boxes=[[2, 3, 20, 25]], points=[[10, 10]]))
    assert rgba.shape == (30, 34, 4) and rgba.dtype == np.float32 and np.isfinite(rgba).all()
    alpha = np.zeros((30, 34), np.float32)
    alpha[5:20, 5:20] = 1
    f, b = dec(img, alpha, Prompt(boxes=[[5, 5, 20, 20]]))
    assert f.shape == b.shape == (30, 34, 3)
    assert np.allclose(b[rgba[..., 3] + alpha <= 0.01], img[rgba[..., 3] + alpha <= 0.01])   # B is the image outside


def test_missing_weights_name_the_config_key(tmp_path: Path, model_dir: Path) -> None:
    from layerkit.modules.decomposer.reflayer import RefLayerDecomposer
    from layerkit.pipelines.decompose import Pipeline

    assert RefLayerDecomposer().missing_weights()[0].startswith("decomposer.model:")
    with pytest.raises(MissingModelError, match="decomposer.model"):
        Pipeline.from_config("reflayer")
    with pytest.raises(MissingModelError, match="decomposer.model"):
        _ = RefLayerDecomposer(model=str(tmp_path / "nothing")).loaded
    (model_dir / "alpha_decoder" / "config.json").unlink()
    reasons = RefLayerDecomposer(model=str(model_dir)).missing_weights()
    assert len(reasons) == 1 and "alpha_decoder/config.json" in reasons[0]
    pipe = Pipeline.from_config("reflayer", check_weights=False)
    assert type(pipe.decomposer).__name__ == "RefLayerDecomposer" and pipe.completion is not None
    with pytest.raises(ConfigError, match="decomposer.steps"):
        Pipeline.from_config("reflayer", decomposer__steps=0, check_weights=False)


def test_prompt_canvas_draws_every_kind() -> None:
    from layerkit.modules.decomposer.reflayer_nets import draw_canvas

    mask = np.zeros((64, 64), np.float32)
    mask[40:50, 40:50] = 1
    c = draw_canvas((64, 64), np.array([[10, 10], [50, 10]]), np.array([1, 0]), np.array([[20, 20, 36, 36]]), mask)
    assert tuple(c[10, 10]) == (0, 0, 1) and tuple(c[10, 50]) == (1, 1, 0)     # positive blue, negative yellow
    assert c[20, 28, 1] == 1 and c[28, 28].sum() == 0                          # box outline only
    assert c[45, 45, 0] == 1 and c[5, 40].sum() == 0                           # mask in red
    assert draw_canvas((8, 8)).sum() == 0


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """4 RGBA objects (discs, squares) and 2 textured backgrounds."""
    root = tmp_path_factory.mktemp("rl")
    (root / "fg").mkdir()
    (root / "bg").mkdir()
    yy, xx = np.mgrid[:40, :40]
    for i, name in enumerate(["red_disc_01", "blue_square_01", "green_disc_01", "grey_square_01"]):
        a = ((yy - 20) ** 2 + (xx - 20) ** 2 < 18 ** 2) if "disc" in name else ((abs(yy - 20) < 16) & (abs(xx - 20) < 16))
        rgb = np.zeros((40, 40, 3))
        rgb[..., i % 3] = 0.8
        rgb += (xx % 6 < 3)[..., None] * 0.15
        Image.fromarray((np.concatenate([rgb, a[..., None]], 2) * 255).astype(np.uint8), "RGBA").save(root / "fg" / f"{name}.png")
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray((rng.random((72, 80, 3)) * 120 + 60).astype(np.uint8)).save(root / "bg" / f"photo_{i}.png")
    return {"fg": str(root / "fg"), "bg": str(root / "bg")}


def test_triplets_occlusion_and_prompt_dropout(folders: dict) -> None:
    from layerkit.training.reflayer_data import KINDS, _Loader, drop_prompts, make_triplet

    ld = _Loader()
    fg = sorted(Path(folders["fg"]).iterdir())
    shares = []
    for s in range(12):
        rng = np.random.default_rng(s)
        t = make_triplet(ld.rgba(fg[0]), [ld.rgba(fg[1])], ld.rgb(sorted(Path(folders["bg"]).iterdir())[0]), 64, rng,
                         occlusion=(0.2, 0.5))
        shares.append(t["occlusion"])
        assert t["image"].shape == (64, 64, 3) and (t["visible"] <= t["alpha"] + 1e-6).all()
        hidden = (t["alpha"] > 0.5) & (t["visible"] < 0.5)
        assert abs(float(t["alpha"][hidden].sum() / max(t["alpha"].sum(), 1)) - t["occlusion"]) < 0.1
    assert np.mean([0.15 <= s <= 0.55 for s in shares]) >= 0.75
    seen = [drop_prompts(np.random.default_rng(i)) for i in range(200)]
    assert all(len(k) >= 1 for k in seen) and set().union(*seen) == set(KINDS)
    assert len({frozenset(k) for k in seen}) == 15                               # every non-empty combination


def _config(folders: dict, out: Path, vae: str, extra: list[str]) -> dict:
    from layerkit.training.config import load_train_config

    return load_train_config("reflayer_tiny", [f"data.fg_dir={folders['fg']}", f"data.bg_dir={folders['bg']}",
                                               f"output_dir={out}", f"model.vae={vae}", f"model.transformer={TINY_TRANSFORMER}",
                                               "data.size=32", "data.batch_size=2", "data.train_samples=4", "data.val_samples=2",
                                               "model.sample_steps=2", "model.sample_images=1", "val_images=1",
                                               "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", *extra])


def test_overfit_one_batch(folders: dict, tmp_path: Path) -> None:
    from layerkit.training.reflayer_module import RefLayerDataModule, build

    tiny_vae().save_pretrained(tmp_path / "vae")
    dm = RefLayerDataModule(fg_dir=folders["fg"], bg_dir=folders["bg"], size=32, batch_size=4, train_samples=4, val_samples=2)
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    batch = next(iter(torch.utils.data.DataLoader(dm.train_set, batch_size=4)))
    torch.manual_seed(0)
    module = build({"vae": str(tmp_path / "vae"), "transformer": TINY_TRANSFORMER}, {"lr": 3e-3})
    opt = torch.optim.Adam([p for p in module.nets.parameters() if p.requires_grad], lr=3e-3)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731 - the same noise every step: a fixed objective
    first = {k: float(v) for k, v in module.losses(batch, module.model, gen()).items()}
    for _ in range(60):
        opt.zero_grad()
        module.losses(batch, module.model, gen())["loss"].backward()
        opt.step()
    last = {k: float(v) for k, v in module.losses(batch, module.model, gen()).items()}
    assert last["fm"] < 0.5 * first["fm"] and last["alpha"] < 0.7 * first["alpha"]


def test_fast_dev_run_export_and_pipeline(folders: dict, tmp_path: Path) -> None:
    from layerkit.modules.decomposer.reflayer import RefLayerDecomposer
    from layerkit.pipelines.decompose import Pipeline
    from layerkit.training.run import train

    tiny_vae().save_pretrained(tmp_path / "vae")
    result = train(_config(folders, tmp_path / "run", str(tmp_path / "vae"), ["trainer.fast_dev_run=true"]))
    assert np.isfinite(result["metrics"]["train/loss"]) and Path(result["export"]).is_dir()
    assert RefLayerDecomposer(model=result["export"]).missing_weights() == []
    pipe = Pipeline.from_config("reflayer", decomposer__model=result["export"], decomposer__steps=1, decomposer__resolution=32)
    img = np.random.default_rng(0).random((40, 48, 3)).astype(np.float32)
    res = pipe(img, Prompt(boxes=[[8, 8, 30, 30]]))
    assert res.foreground.shape == (40, 48, 4) and res.background.shape == (40, 48, 3)


def test_make_dataset_task_reflayer_and_root(folders: dict, tmp_path: Path) -> None:
    from layerkit.cli import main
    from layerkit.training.reflayer_module import RefLayerDataModule

    out = tmp_path / "rl"
    assert main(["make-dataset", "--task", "reflayer", "--fg-dir", folders["fg"], "--bg-dir", folders["bg"], "--n", "6",
                 "--size", "32", "--quiet", "-o", str(out)]) == 0
    index = json.loads((out / "index.json").read_text())
    assert len(index["samples"]) == 6 and all(0 <= s["occlusion"] < 1 for s in index["samples"])
    dm = RefLayerDataModule(root=str(out), size=32, batch_size=2, train_samples=4, val_samples=2, val_fraction=0.25)
    dm.setup("fit")
    b = next(iter(dm.train_dataloader()))
    assert b["image"].shape == (2, 3, 32, 32) and b["alpha"].shape == (2, 1, 32, 32) and len(b["text"]) == 2
    assert set(dm.split["fg_val"]).isdisjoint(dm.split["fg_train"])
    assert main(["make-dataset", "--task", "reflayer", "--fg-dir", str(tmp_path / "nope"), "--bg-dir", folders["bg"],
                 "-o", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()
    assert main(["make-dataset", "--task", "reflayer", "--fg-dir", folders["fg"], "--bg-dir", folders["bg"], "--size", "30",
                 "-o", str(tmp_path / "bad")]) == 2


def test_bad_settings(folders: dict, tmp_path: Path) -> None:
    from layerkit.modules.decomposer.reflayer_nets import RefLayerModel
    from layerkit.training.reflayer_module import RefLayerDataModule, build

    with pytest.raises(DataError, match="data.size"):
        RefLayerDataModule(size=30)
    with pytest.raises(DataError, match="data.root"):
        RefLayerDataModule(root=str(tmp_path), size=32).setup()
    with pytest.raises(ConfigError, match="model.vae"):
        build({"transformer": TINY_TRANSFORMER}, {})
    with pytest.raises(MissingModelError, match="model.vae="):
        build({"vae": str(tmp_path / "missing_vae"), "transformer": TINY_TRANSFORMER}, {})
    with pytest.raises(ConfigError, match="unknown key 'model.unet'"):
        build({"vae": "x", "unet": {}}, {})
    with pytest.raises(ValueError, match="channels"):
        from diffusers import SD3Transformer2DModel

        vae = tiny_vae()
        RefLayerModel(SD3Transformer2DModel(**TINY_TRANSFORMER, in_channels=4, out_channels=4), vae, None,  # type: ignore[arg-type]
                      {}, (torch.zeros(1, 2, 8), torch.zeros(1, 8)))


def test_hidden_error_and_the_mean_fill_bar() -> None:
    from layerkit.training.reflayer_module import hidden_l1, mean_fill

    gt = torch.zeros(1, 3, 4, 4)
    gt[:, 0, :, :2] = 1.0            # visible half red, hidden half white-ish
    gt[:, :, :, 2:] = 0.5
    alpha = torch.ones(1, 1, 4, 4)
    vis = torch.zeros(1, 1, 4, 4)
    vis[..., :2] = 1.0
    filled = mean_fill(gt, vis)
    assert torch.equal(filled[..., :2], gt[..., :2])                       # the visible part kept
    assert torch.allclose(filled[0, :, 0, 3], torch.tensor([1.0, 0.0, 0.0]))  # the hidden part = visible mean
    assert hidden_l1(gt, gt, alpha, vis).item() == 0.0
    assert hidden_l1(filled, gt, alpha, vis).item() == pytest.approx((0.5 + 0.5 + 0.5) / 3)
    assert hidden_l1(gt * vis, gt, alpha, vis).item() == pytest.approx(0.5)   # "no completion": 0 under the cover
    assert torch.isnan(hidden_l1(gt, gt, alpha, torch.ones_like(vis)))        # nothing hidden


def test_layer_flattened_over_the_matte_and_solved_back(model_dir: Path) -> None:
    """The VAE sees the layer over grey (its latent then holds the silhouette); decode solves the colour back."""
    from layerkit.modules.decomposer.reflayer_nets import MATTE, RefLayerModel

    m = RefLayerModel.from_pretrained(str(model_dir))
    assert m.matte == MATTE == 0.5
    assert json.loads((model_dir / "reflayer_config.json").read_text())["format"] == "layerkit.reflayer/2"
    rgb = torch.rand(1, 3, 8, 8)
    alpha = torch.zeros(1, 1, 8, 8)
    alpha[..., 2:6, 2:6] = 1.0
    alpha[..., 2:6, 6] = 0.5
    flat = m.flatten(rgb, alpha)
    assert torch.equal(flat[..., 2:6, 2:6], rgb[..., 2:6, 2:6]) and torch.all(flat[..., 0, :] == 0.5)
    assert torch.allclose(flat[..., 2:6, 6], 0.5 * rgb[..., 2:6, 6] + 0.25)
    # two layers of the same colour but different silhouettes must reach the VAE differently
    other = alpha.clone()
    other[..., 2:6, 2:4] = 0.0
    assert not torch.equal(m.flatten(rgb, alpha), m.flatten(rgb, other))

    # stand-ins for the VAE decoder and the alpha decoder that return the exact flattened layer: isolates the solve
    m.vae.decode = lambda z: type("D", (), {"sample": flat * 2 - 1})()  # type: ignore[method-assign]
    m.alpha_decoder.forward = lambda z: alpha  # type: ignore[method-assign]
    straight, a = m.decode(torch.zeros(1, 4, 4, 4))
    assert torch.equal(a, alpha)
    inside = alpha >= 0.05
    assert torch.allclose(straight.expand(-1, 3, -1, -1)[inside.expand(-1, 3, -1, -1)],
                          rgb[inside.expand(-1, 3, -1, -1)], atol=1e-5)
    assert torch.all(straight[..., 0, :] == 0.5)          # no alpha: the flattened colour as it is

    # a model exported before the matte (format /1) loads with the colour as given
    cfg = json.loads((model_dir / "reflayer_config.json").read_text())
    (model_dir / "reflayer_config.json").write_text(json.dumps({"format": "layerkit.reflayer/1",
                                                                "text_encoder": cfg["text_encoder"]}))
    old = RefLayerModel.from_pretrained(str(model_dir))
    assert old.matte is None and torch.equal(old.flatten(rgb, alpha), rgb)
