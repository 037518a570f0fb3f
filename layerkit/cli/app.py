"""``layerkit app``: the interactive page (Gradio) on http://127.0.0.1:7860."""

from __future__ import annotations

import argparse

from layerkit.cli.common import HelpFormatter, add_pipeline_args

EXAMPLES = """examples:
  layerkit app                                   # classical config, no weights, http://127.0.0.1:7860
  layerkit app --config layeringdiff --host 0.0.0.0 --port 8080
  layerkit app --set segmenter.iterations=8

needs the app extra: pip install 'layerkit[app]'. Each browser session has its own state;
nothing is kept between users. API endpoints for gradio_client: /decompose, /layers (docs/app.md)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("app", help="interactive page: click objects, refine, download PSD/ORA/ZIP",
                       description=__doc__, epilog=EXAMPLES, formatter_class=HelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=7860, help="port to listen on")
    p.add_argument("--share", action="store_true", help="ask Gradio for a public share link (off by default)")
    add_pipeline_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from layerkit.app import build_app, require_gradio
    from layerkit.cli import common
    from layerkit.errors import ConfigError

    require_gradio()
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be in 1..65535, got {args.port}")
    pipe = common.build_pipeline(args, grounder=True)  # the page offers phrases when there is a grounder
    demo = build_app(pipe)
    print(f"layerkit app: config {pipe.settings.name!r} on http://{args.host}:{args.port}", flush=True)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, show_error=False, quiet=True)
    return 0
