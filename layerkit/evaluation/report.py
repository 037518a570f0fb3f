"""A self-contained HTML report of one or several evaluation runs.

One file, no external resources: pictures are base64 data URIs, plots are PNGs rendered with
matplotlib's Agg canvas, and the tables sort on a click on their header (a few lines of inline
JavaScript). Sections: summary table (one row per run), metric distributions, time per
pipeline stage, then per run its per-sample table and a gallery, worst samples first.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from layerkit.evaluation.runner import fmt
from layerkit.evaluation.visuals import data_uri, distribution_plot, timing_plot

#: ``(key, header, higher_is_better)``
MetricSpec = tuple[str, str, bool]


@dataclass
class Run:
    """The results of one config on one data set.

    Attributes:
        name: config spec, e.g. ``"classical+hfa"``.
        records: per-sample dicts (``id`` plus metrics; failed ones have ``error``).
        mean: metric key → mean over the successful samples.
        timings: stage → mean seconds per sample.
        thumbs: sample id → picture caption → data URI, in display order.
        info: free-form facts shown under the run's heading (config overrides…).
    """

    name: str
    records: list[dict[str, Any]]
    mean: dict[str, float]
    timings: dict[str, float] = field(default_factory=dict)
    thumbs: dict[str, dict[str, str]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1500px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}h3{font-size:15px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f3f3f3;cursor:pointer;user-select:none}th.sorted-asc::after{content:" ▲"}th.sorted-desc::after{content:" ▼"}
td:first-child,th:first-child{text-align:left}tr.mean td{font-weight:bold;background:#fafafa}
td.err{color:#b00;text-align:left;white-space:normal}
.meta{color:#555;font-size:13px}.hint{color:#777;font-size:12px}
.row{display:flex;gap:6px;align-items:flex-start;margin:10px 0;padding-bottom:8px;border-bottom:1px solid #eee}
.cap{width:170px;font-size:12px;flex:none}.cap b{font-size:13px}
figure{margin:0;text-align:center}figcaption{font-size:11px;color:#666}
img.plot{max-width:100%;border:1px solid #eee}
"""

_JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
 t.querySelectorAll('th').forEach(function(th,col){th.addEventListener('click',function(){
  var body=t.tBodies[0],rows=Array.prototype.slice.call(body.rows).filter(function(r){return !r.classList.contains('mean')});
  var fixed=Array.prototype.slice.call(body.rows).filter(function(r){return r.classList.contains('mean')});
  var asc=!th.classList.contains('sorted-asc');
  t.querySelectorAll('th').forEach(function(h){h.classList.remove('sorted-asc','sorted-desc')});
  th.classList.add(asc?'sorted-asc':'sorted-desc');
  function key(r){var c=r.cells[col],v=c.getAttribute('data-v');if(v===null)return c.textContent;var f=parseFloat(v);return isNaN(f)?Infinity:f}
  rows.sort(function(a,b){var x=key(a),y=key(b);if(typeof x==='string')return asc?x.localeCompare(y):y.localeCompare(x);return asc?x-y:y-x});
  rows.concat(fixed).forEach(function(r){body.appendChild(r)});
 })});
});
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _cell(value: Any, digits: int = 3) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'<td data-v="{float(value)!r}">{_e(fmt(value, digits))}</td>'
    return f"<td>{_e(fmt(value, digits))}</td>"


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]], mean_row: Mapping[str, Any] | None = None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for _, h in columns)
    body = []
    for r in rows:
        cells = "".join(f'<td class="err">{_e(r.get(k, ""))}</td>' if k == "error" else _cell(r.get(k)) for k, _ in columns)
        body.append(f"<tr>{cells}</tr>")
    if mean_row is not None:
        cells = "".join(_cell(mean_row.get(k)) if k != "error" else "<td></td>" for k, _ in columns)
        body.append(f'<tr class="mean">{cells}</tr>')
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def worst_first(records: Sequence[Mapping[str, Any]], key: str, higher_is_better: bool = False) -> list[Mapping[str, Any]]:
    """Successful records sorted worst first by ``key`` (missing values last)."""
    ok = [r for r in records if "error" not in r]

    def badness(r: Mapping[str, Any]) -> float:
        v = r.get(key)
        if not isinstance(v, (int, float)) or v != v:
            return float("-inf")
        return -float(v) if higher_is_better else float(v)

    return sorted(ok, key=badness, reverse=True)


def _gallery(run: Run, metrics: Sequence[MetricSpec], worst_key: str, worst_hib: bool, limit: int | None) -> str:
    ordered = worst_first(run.records, worst_key, worst_hib)
    if limit is not None:
        ordered = ordered[:limit]
    shown = [k for k, _, _ in metrics if k not in ("seconds", "rss_mb")][:6]
    headers = {k: h for k, h, _ in metrics}
    out = []
    for r in ordered:
        pics = run.thumbs.get(str(r.get("id")))
        if not pics:
            continue
        cap = "<br>".join(f"{_e(headers[k])}: {_e(fmt(r.get(k)))}" for k in shown)
        figs = "".join(f'<figure><img src="{uri}" alt="{_e(n)}"><figcaption>{_e(n)}</figcaption></figure>'
                       for n, uri in pics.items())
        out.append(f'<div class="row"><div class="cap"><b>{_e(r.get("id"))}</b> {_e(r.get("label", ""))}<br>{cap}</div>{figs}</div>')
    return "".join(out)


def render_html(title: str, runs: Sequence[Run], metrics: Sequence[MetricSpec], worst_key: str = "sad",
                meta: Mapping[str, Any] | None = None, gallery_limit: int | None = None,
                extra_columns: Sequence[tuple[str, str]] = (("id", "sample"), ("label", "label")),
                plots: Mapping[str, bytes] | None = None) -> str:
    """The report as one HTML string.

    Args:
        title: page title.
        runs: the runs to compare.
        metrics: ``(key, header, higher_is_better)`` of every metric, in column order.
        worst_key: metric that orders the galleries (worst first).
        meta: facts listed under the title (data folder, prompt, machine…).
        gallery_limit: at most this many gallery rows per run (default: all).
        extra_columns: identifying columns before the metrics in per-sample tables.
        plots: :func:`report_plots` output, when already made (made here otherwise).

    Returns:
        A complete, self-contained HTML document.
    """
    hib = {k: b for k, _, b in metrics}
    summary_cols = [("run", "config"), ("n", "samples ok"), *((k, h) for k, h, _ in metrics)]
    summary_rows = [dict(r.mean, run=r.name, n=f"{sum('error' not in x for x in r.records)}/{len(r.records)}") for r in runs]
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{_e(title)}</h1>"]
    if meta:
        parts.append('<p class="meta">' + "<br>".join(f"<b>{_e(k)}</b>: {_e(v)}" for k, v in meta.items()) + "</p>")
    arrows = ", ".join(f"{h} {'↑' if b else '↓'}" for _, h, b in metrics)
    parts += ["<h2>Summary</h2>", f'<p class="hint">mean over successful samples; better is {_e(arrows)}. '
              "Click a column header to sort.</p>", _table(summary_rows, summary_cols)]
    plots = report_plots(runs, metrics) if plots is None else plots
    for name, alt in (("plots/metrics.png", "Metric distributions"), ("plots/timings.png", "Time per stage")):
        if name in plots:
            parts += [f"<h2>{alt}</h2>", f'<img class="plot" src="{data_uri(plots[name], "image/png")}" alt="{alt.lower()}">']
    cols = [*extra_columns, *((k, h) for k, h, _ in metrics), ("error", "error")]
    for run in runs:
        parts.append(f"<h2>{_e(run.name)}</h2>")
        if run.info:
            parts.append('<p class="meta">' + "<br>".join(f"<b>{_e(k)}</b>: {_e(v)}" for k, v in run.info.items()) + "</p>")
        ordered = worst_first(run.records, worst_key, hib.get(worst_key, False))
        failed = [r for r in run.records if "error" in r]
        parts += [f'<p class="hint">samples sorted worst first by {_e(dict((k, h) for k, h, _ in metrics).get(worst_key, worst_key))}</p>',
                  _table([*ordered, *failed], cols, dict(run.mean, id="mean"))]
        gallery = _gallery(run, metrics, worst_key, hib.get(worst_key, False), gallery_limit)
        if gallery:
            parts += ["<h3>Samples, worst first</h3>", gallery]
    parts.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(parts)


def report_plots(runs: Sequence[Run], metrics: Sequence[MetricSpec]) -> dict[str, bytes]:
    """The report's plots as PNG files (``plots/metrics.png``, ``plots/timings.png``) for docs.

    Peak RSS is left out of the distributions: it is a running maximum, not a per-sample value.
    """
    quality = {k: h for k, h, _ in metrics if k != "rss_mb"}
    values = {r.name: {k: [x.get(k) for x in r.records if "error" not in x] for k in quality} for r in runs}
    out: dict[str, bytes] = {}
    if any(values[r.name][k] for r in runs for k in quality):
        out["plots/metrics.png"] = distribution_plot(values, quality)
    if any(r.timings for r in runs):
        out["plots/timings.png"] = timing_plot({r.name: r.timings for r in runs})
    return out
