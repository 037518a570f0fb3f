"""Benchmark runs: several configs on one composite folder, in one process.

Each run is named by a *config spec* (``classical+hfa``: a config plus overlays); specs are
composed by :func:`layerkit.config.compose` inside ``Pipeline.from_config``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from layerkit.evaluation.composites import METRIC_KEYS, METRICS, TABLE_COLUMNS, CompositeSample, evaluate_composites, table_rows
from layerkit.evaluation.report import Run, render_html, report_plots
from layerkit.evaluation.runner import EtaProgress, dump_json, environment, markdown_table, mean_timings, peak_rss_mb, summarise


def run_config(pipe: Any, name: str, samples: Sequence[CompositeSample], prompt: str = "box", visuals: bool = False,
               thumb_height: int = 128, quiet: bool = False, info: Mapping[str, Any] | None = None) -> Run:
    """Evaluate one pipeline on composite samples and collect a :class:`~layerkit.evaluation.report.Run`.

    Args:
        pipe: the pipeline.
        name: the run's name (config spec).
        samples: from :func:`~layerkit.evaluation.composites.find_samples`.
        prompt: ``box``, ``point`` or ``box+point``.
        visuals: also keep the report thumbnails of each sample.
        thumb_height: thumbnail height in pixels.
        quiet: no progress lines.
        info: facts shown with the run in reports.
    """
    from layerkit.evaluation.visuals import decomposition_thumbs

    thumbs: dict[str, dict[str, str]] = {}

    def keep(sample: CompositeSample, gt: dict, res: Any) -> None:
        thumbs[sample.id] = decomposition_thumbs(res.image, gt["alpha"], res.alpha, res.foreground, res.background, thumb_height)

    t0 = time.perf_counter()
    records = evaluate_composites(pipe, samples, prompt, EtaProgress(len(samples), name, enabled=not quiet),
                                  keep if visuals else None)
    run_info = dict(info or {})
    run_info.update({"wall seconds": round(time.perf_counter() - t0, 2), "peak RSS MiB": round(peak_rss_mb(), 1)})
    mean = summarise(records, METRIC_KEYS)
    mean["rss_mb"] = max([r["rss_mb"] for r in records if "rss_mb" in r], default=float("nan"))  # a peak, not a mean
    return Run(name, records, mean, mean_timings(records), thumbs, run_info)


def run_doc(run: Run) -> dict[str, Any]:
    """One run as the JSON object written in ``results.json``."""
    ok = sum("error" not in r for r in run.records)
    return {"config": run.name, "info": run.info, "n": len(run.records), "n_ok": ok, "n_failed": len(run.records) - ok,
            "mean": run.mean, "timings_mean": run.timings, "samples": run.records}


def composite_outputs(runs: Sequence[Run], meta: Mapping[str, Any], html: bool = True,
                      title: str = "layerkit benchmark", gallery_limit: int | None = None) -> dict[str, str | bytes]:
    """The files of an eval/bench output folder.

    One run gives a flat ``results.json`` (the run's fields next to ``meta``) and a per-sample
    ``table.md`` ending with the mean row; several runs give ``{"runs": [...]}`` and a summary
    table followed by one per-sample table per run. With ``html``, ``report.html`` and
    ``plots/*.png`` are added (``gallery_limit``: at most that many gallery rows per run).
    """
    env = environment()
    if len(runs) == 1:
        doc: dict[str, Any] = {**meta, **run_doc(runs[0]), "env": env}
        md = [f"# {title}: {runs[0].name}\n", _meta_md({**meta, "layerkit commit": env["git"], "date": env["date"]}),
              markdown_table(table_rows(runs[0].records, runs[0].mean), TABLE_COLUMNS)]
    else:
        doc = {**meta, "runs": [run_doc(r) for r in runs], "env": env}
        summary = [dict(r.mean, run=r.name, n=f"{sum('error' not in x for x in r.records)}/{len(r.records)}") for r in runs]
        md = [f"# {title}\n", _meta_md({**meta, "layerkit commit": env["git"], "date": env["date"]}), "## Summary (means)\n",
              markdown_table(summary, [("run", "config"), ("n", "ok"), *((k, h) for k, h, _ in METRICS)])]
        for r in runs:
            md += [f"\n## {r.name}\n", markdown_table(table_rows(r.records, r.mean), TABLE_COLUMNS)]
    files: dict[str, str | bytes] = {"results.json": dump_json(doc), "table.md": "\n".join(md)}
    if html:
        plots = report_plots(runs, METRICS)
        files.update(plots)
        facts = {**meta, "machine": f"{env['platform']}, {env['cpus']} CPUs", "layerkit commit": env["git"], "date": env["date"]}
        files["report.html"] = render_html(title, runs, METRICS, "sad", facts, gallery_limit, plots=plots)
    return files


def _meta_md(meta: Mapping[str, Any]) -> str:
    return "".join(f"- **{k}**: {v}\n" for k, v in meta.items()) + "\n"
