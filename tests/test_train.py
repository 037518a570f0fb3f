"""Training: a CPU ``fast_dev_run`` of every shipped training config with tiny nets, an
overfit-one-batch check, resume, the checkpoint → pipeline round trip, the CLI, the data module
and config errors. Foreground/background folders are made in code under ``tmp_path``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from layerkit.config import available_configs
from layerkit.errors import ConfigError, DataError
from layerkit.training.config import load_train_config

TINY_UNET = {"block_out_channels": [4, 8], "layers_per_block": 1, "norm_num_groups": 2, "cross_attention_dim": 8,
             "attention_head_dim": 2, "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
             "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"]}
TINY_DATA = ["data.size=32", "data.batch_size=2", "data.num_workers=0", "data.train_samples=4", "data.val_samples=2",
             "trainer.accelerator=cpu", "trainer.precision=32-true", "trainer.enable_progress_bar=false", "val_images=2"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """3 RGBA foregrounds (soft-edged blobs) and 3 textured backgrounds."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    (root / "fg").mkdir()
    (root / "bg").mkdir()
    yy, xx = np.mgrid[:40, :48]
    for i in range(3):
        d = np.hypot((yy - 20) / (12 + 3 * i), (xx - 24) / 16)
        a = np.clip((1 - d) * 6, 0, 1)
        rgb = np.stack([0.8 - 0.2 * i + 0 * xx, 0.2 + xx / 96, 0.3 + yy / 80], 2)
        rgba = np.concatenate([rgb, a[..., None]], 2)
        Image.fromarray((rgba * 255).astype(np.uint8), "RGBA").save(root / "fg" / f"blob_{i:02d}.png")
        bg = np.clip(rng.random((56, 72, 3)) * 0.3 + np.sin(xx.mean() + np.arange(72) / (3 + i))[None, :, None] * 0.3 + 0.4, 0, 1)
        Image.fromarray((bg * 255).astype(np.uint8)).save(root / "bg" / f"photo_{i}.png")
    return {"fg": str(root / "fg"), "bg": str(root / "bg")}


@pytest.fixture(scope="module")
def tiny_vae_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vae") / "vae"
    AutoencoderKL(block_out_channels=(4, 8), latent_channels=4, norm_num_groups=2,
                  down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2).save_pretrained(path)
    return str(path)


def tiny_overrides(task: str, vae_dir: str) -> list[str]:
    """Make any config of ``task`` tiny enough for seconds on a CPU."""
    if task == "hfa":
        return ["model.channels=[4, 8]", "data.hat=degrade"]
    if task == "vae":
        return ["model.block_out_channels=[4, 8]", "model.norm_num_groups=2"]
    if task == "reflayer":
        from test_reflayer import TINY_TRANSFORMER

        return ["model.pretrained=null", f"model.vae={vae_dir}", f"model.transformer={TINY_TRANSFORMER}", "model.sample_steps=1",
                "model.sample_images=1", "data.num_workers=0", "trainer.devices=1", "trainer.strategy=auto", "optim.ema_decay=0.9"]
    return ["model.pretrained=null", f"model.vae={vae_dir}", f"model.unet={TINY_UNET}", "model.sample_steps=2",
            "model.sample_images=1", "optim.ema_decay=0.9"]


def _run(name: str, folders: dict, out: Path, extra: list[str], resume: str | None = None) -> dict:
    from layerkit.training.run import train

    cfg = load_train_config(name, [f"data.fg_dir={folders['fg']}", f"data.bg_dir={folders['bg']}",
                                   f"output_dir={out}", *TINY_DATA, *extra])
    return train(cfg, resume=resume)


@pytest.mark.parametrize("name", available_configs("train"))
def test_fast_dev_run_of_every_config(name: str, folders: dict, tiny_vae_dir: str, tmp_path: Path) -> None:
    task = load_train_config(name)["task"]
    result = _run(name, folders, tmp_path / "run", tiny_overrides(task, tiny_vae_dir) + ["trainer.fast_dev_run=true"])
    assert result["export"] and Path(result["export"]).exists()
    assert np.isfinite(result["metrics"]["train/loss"])


def test_overfit_one_batch() -> None:
    from layerkit.training.hfa_module import build

    torch.manual_seed(0)
    module = build({"channels": [8, 16]}, {"lr": 3e-3, "warmup_steps": 0})
    g = torch.Generator().manual_seed(0)
    torch.rand(2, 3, 32, 32, generator=g)  # a draw the data below was made after
    a = (torch.rand(2, 1, 32, 32, generator=g) > 0.5).float() * 0.7
    fg, bg = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    batch = {"image": a * fg + (1 - a) * bg, "alpha": a, "fg": fg, "bg": bg, "fg_hat": fg * 0.5, "bg_hat": bg * 0.5 + 0.2}
    opt = module.configure_optimizers()["optimizer"]
    module.log_dict = lambda *args, **kw: None  # no trainer attached
    losses = []
    for step in range(60):
        loss = module.training_step(batch, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], losses[::10]


@pytest.mark.timeout(180)
def test_data_workers_with_the_classical_hat_finish(folders: dict, tmp_path: Path) -> None:
    """Worker processes run pymatting's numba-parallel code after torch has used OpenMP in the
    trainer process; forked workers hung there (no batch in 7 minutes on a GPU machine, none in
    5 minutes here), so the loaders start their workers with ``spawn``."""
    n = torch.get_num_threads()
    torch.set_num_threads(2)  # the trainer process as a user runs it: an OpenMP pool of several threads
    try:
        torch.ones(256, 256) @ torch.ones(256, 256)
        result = _run("hfa_tiny", folders, tmp_path / "run", ["data.num_workers=2", "data.hat=classical", "trainer.max_steps=1",
                                                              "data.train_samples=4", "data.val_samples=2"])
    finally:
        torch.set_num_threads(n)
    assert Path(result["export"]).exists() and np.isfinite(result["metrics"]["train/loss"])


def test_resume_and_pipeline_round_trip(folders: dict, tmp_path: Path, composite: dict) -> None:
    from layerkit.pipelines.decompose import Pipeline
    from layerkit.types import Prompt

    out = tmp_path / "run"
    first = _run("hfa_tiny", folders, out, ["trainer.max_epochs=1"])
    assert Path(first["best_checkpoint"]).name == "best.ckpt" and (out / "checkpoints" / "last.ckpt").is_file()
    assert list((out / "logs").glob("version_*/metrics.csv")) and list((out / "logs").glob("version_*/images/val_*.png"))
    second = _run("hfa_tiny", folders, out, ["trainer.max_epochs=2"], resume="last")
    last = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 1 and last["global_step"] == 4  # 2 steps per epoch, continued from epoch 1
    pipe = Pipeline.from_config("classical", {"refiner.backend": "hfa", "refiner.checkpoint": second["export"]})
    img = composite["image"]
    res = pipe(img, Prompt(boxes=[composite["box"].tolist()]))
    assert res.background.shape == img.shape and np.isfinite(res.background).all()
    assert type(pipe.refiner).__name__ == "HFARefiner" and pipe.refiner.meta["task"] == "hfa"


def test_cli(folders: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from layerkit.cli import main

    args = ["train", "hfa_tiny", "--set", f"data.fg_dir={folders['fg']}", f"data.bg_dir={folders['bg']}",
            f"output_dir={tmp_path / 'cli'}", "trainer.fast_dev_run=true", "trainer.accelerator=cpu"]
    assert main(args) == 0
    assert '"export"' in capsys.readouterr().out
    assert main(["train", "hfa_tiny", "--print-config", "--set", "optim.lr=0.01"]) == 0
    assert "lr: 0.01" in capsys.readouterr().out
    assert main(["train", "hfa_tiny", "--set", "data.fgdir=x"]) == 2
    assert "unknown key 'data.fgdir'" in capsys.readouterr().err
    assert main(["train", "hfa_tiny", "--set", f"output_dir={tmp_path / 'empty'}", "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown training config|unknown train config"):
        load_train_config("no_such_config")
    with pytest.raises(ConfigError, match="unknown task"):
        load_train_config("hfa_tiny", ["task=gan"])
    with pytest.raises(ConfigError, match="Lightning strategies"):
        load_train_config("hfa_tiny", ["trainer.strategy=horovod_magic"])
    with pytest.raises(ConfigError, match="max_epochs"):
        load_train_config("hfa_tiny", ["trainer.max_epochs=many"])
    with pytest.raises(ConfigError, match="unknown logger"):
        load_train_config("hfa_tiny", ["logger=wandb"])
    from layerkit.training.hfa_module import build

    with pytest.raises(ConfigError, match="unknown key 'model.chanels'"):
        build({"chanels": [4]}, {})


def test_datamodule_split_and_samples(folders: dict) -> None:
    from layerkit.training.datamodule import CompositeDataModule

    dm = CompositeDataModule(folders["fg"], folders["bg"], size=32, batch_size=2, num_workers=0, train_samples=4,
                             val_samples=2, val_fraction=0.34, hat="degrade")
    dm.setup()
    assert not set(dm.split["fg_train"]) & set(dm.split["fg_val"]) and len(dm.split["fg_val"]) == 1
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"image", "alpha", "fg", "bg", "fg_hat", "bg_hat"}
    assert batch["image"].shape == (2, 3, 32, 32) and batch["alpha"].shape == (2, 1, 32, 32)
    a = batch["alpha"]
    assert torch.allclose(batch["image"], a * batch["fg"] + (1 - a) * batch["bg"], atol=1.5 / 255)
    v1, v2 = next(iter(dm.val_dataloader())), next(iter(dm.val_dataloader()))
    assert torch.equal(v1["image"], v2["image"])  # fixed validation samples
    with pytest.raises(DataError, match="does not exist"):
        CompositeDataModule("/nonexistent/fg", folders["bg"]).setup()
    with pytest.raises(DataError, match="data.hat"):
        CompositeDataModule(folders["fg"], folders["bg"], hat="gan")


def test_loss_curve_plot(tmp_path: Path) -> None:
    from layerkit.training.plots import plot_curves, read_metrics, smooth

    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text("epoch,step,train/loss,val/loss\n0,9,1.0,\n0,19,0.5,\n0,19,,0.6\n1,29,0.25,\n")
    data = read_metrics(csv_path)
    assert data["train/loss"][1].tolist() == [1.0, 0.5, 0.25] and data["val/loss"][0].tolist() == [19.0]
    assert smooth(np.array([1.0, 3.0, 5.0]), 2).tolist() == [1.0, 2.0, 4.0]
    out = plot_curves(csv_path, ["train/loss", "val/loss"], tmp_path / "loss.png", window=2)
    assert Image.open(out).size[0] > 100
    with pytest.raises(KeyError, match="logged"):
        plot_curves(csv_path, ["val/psnr"], tmp_path / "x.png")


def test_bf16_mixed_with_tensorboard(folders: dict, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    out = tmp_path / "run"
    result = _run("hfa_tiny", folders, out, ["trainer.max_epochs=1", "trainer.precision=bf16-mixed", "logger=tensorboard"])
    assert np.isfinite(result["metrics"]["val/loss"])
    assert list((out / "logs").glob("version_*/events.out.tfevents.*"))


def test_every_lightning_trainer_argument_passes_through(folders: dict, tmp_path: Path) -> None:
    """``trainer.*`` is made from ``lightning.Trainer``'s own signature (as LightningCLI does)."""
    import inspect

    import lightning as L

    from layerkit.training.config import TRAINER_OWN
    from layerkit.training.run import build_trainer, run_dir

    cfg = load_train_config("hfa_tiny", [f"trainer.default_root_dir={tmp_path / 'x'}", "trainer.benchmark=true",
                                         "trainer.detect_anomaly=true", "trainer.overfit_batches=1"])
    assert run_dir(cfg) == tmp_path / "x"
    names = {n for n in inspect.signature(L.Trainer.__init__).parameters if n != "self"} - set(TRAINER_OWN)
    assert names <= set(cfg["trainer"])
    trainer = build_trainer(cfg, run_dir(cfg))
    assert trainer.default_root_dir == str(tmp_path / "x") and trainer.overfit_batches == 1
    with pytest.raises(ConfigError, match=r"unknown key 'trainer.nonsense'; valid keys: .*default_root_dir"):
        load_train_config("hfa_tiny", ["trainer.nonsense=1"])
    with pytest.raises(ConfigError, match=r"unknown key 'trainer.callbacks'"):  # layerkit's own, documented
        load_train_config("hfa_tiny", ["trainer.callbacks=[]"])


@pytest.mark.parametrize("strategy", ["ddp", "ddp_spawn", "fsdp"])
def test_distributed_strategies_build_through_lightning(strategy: str, tmp_path: Path) -> None:
    """DDP/FSDP are Lightning's own strategies, selected by name (built here on two CPU devices;
    Lightning's FSDP needs CUDA, so without a GPU its refusal is Lightning's own)."""
    import torch

    from layerkit.training.run import build_trainer

    cfg = load_train_config("hfa_tiny", [f"trainer.strategy={strategy}", "trainer.devices=2", "trainer.accelerator=cpu"])
    assert cfg["trainer"]["strategy"] == strategy
    if strategy == "fsdp" and not torch.cuda.is_available():
        with pytest.raises(Exception, match="(?i)fsdp|cuda|gpu|accelerator"):
            build_trainer(cfg, tmp_path)
        return
    trainer = build_trainer(cfg, tmp_path)
    assert type(trainer.strategy).__name__.lower().startswith(strategy.split("_")[0])
