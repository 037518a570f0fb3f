"""``layerkit train``: train a learned stage (HFA, FBDD, its VAE) with Lightning."""

from __future__ import annotations

import argparse
import json
import shlex

from layerkit.cli.common import HelpFormatter

EXAMPLES = """examples:
  layerkit train hfa --set data.fg_dir=fg/ data.bg_dir=bg/ trainer.max_epochs=20
  layerkit train hfa --set output_dir=runs/hfa2 --resume            # continue from last.ckpt
  layerkit train vae_tiny --set data.fg_dir=fg/ data.bg_dir=bg/
  layerkit train fbdd --set model.pretrained=/models/sd2-inpainting trainer.precision=bf16-mixed \\
      trainer.devices=4 trainer.strategy=ddp
  layerkit train my_run.yaml --set logger=tensorboard

shipped configs: layerkit/configs/train/*.yaml. The run folder (output_dir) gets config.yaml,
checkpoints/{best,last}.ckpt, logs/ (metrics.csv, images/) and export/ (what the pipeline loads:
hfa.pt for refiner.checkpoint, fbdd/ for decomposer.model)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a learned stage (hfa, fbdd, vae) with Lightning",
                       description=__doc__, epilog=EXAMPLES, formatter_class=HelpFormatter)
    p.add_argument("config", metavar="NAME|PATH", help="shipped training config name (hfa, fbdd, ...) or a YAML path")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", action="extend",
                   help="dotted overrides, e.g. data.fg_dir=fg/ trainer.max_epochs=20 optim.lr=1e-4")
    p.add_argument("--resume", nargs="?", const="last", default=None, metavar="CKPT",
                   help="continue a run: without a value from OUTPUT_DIR/checkpoints/last.ckpt, or from CKPT")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from layerkit.training.config import load_train_config

    cfg = load_train_config(args.config, list(args.set))
    if args.print_config:
        import yaml

        print(yaml.safe_dump(cfg, sort_keys=False), end="")
        return 0
    from layerkit.training.run import train

    parts = ["layerkit", "train", args.config] + (["--set", *args.set] if args.set else [])
    if args.resume:
        parts += ["--resume", args.resume]
    command = " ".join(shlex.quote(a) for a in parts)
    result = train(cfg, resume=args.resume, command=command)
    print(json.dumps({"export": result["export"], "best_checkpoint": result["best_checkpoint"],
                      "seconds": round(result["seconds"], 1),
                      "metrics": {k: round(v, 5) for k, v in sorted(result["metrics"].items())}}, indent=1))
    return 0
