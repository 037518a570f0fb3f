"""Progress display: one mechanism (tqdm) for pipeline stages, multi-object runs, benchmarks and
training (Lightning's own ``TQDMProgressBar``), and one switch, :func:`set_quiet`, that silences all
of it — diffusers' step bars of the diffusion stages included (they stay on otherwise).

Bars write to stderr, appear only once a task has run for ``delay`` seconds (tqdm's ``delay``), and
show an ETA whenever the number of items is known.

Example:
    >>> pipe.progress = StageProgress()          # "decompose: 3 stages [00:02, matte]"
    >>> with item_bar(30, "classical") as bar:    # "classical: 40%|████ | 12/30 [00:14<00:21, 0.85 it/s, 0012 ok]"
    ...     bar.update("0012", "ok")
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm.auto import tqdm

_QUIET = False


def set_quiet(quiet: bool = True) -> None:
    """Silence (or restore) every progress bar of this process, diffusers' step bars included."""
    global _QUIET
    _QUIET = bool(quiet)


def is_quiet() -> bool:
    """True after :func:`set_quiet`."""
    return _QUIET


def diffusers_bar_config() -> dict[str, Any]:
    """Arguments for a diffusers pipeline's ``set_progress_bar_config``: its own step bar, on unless quiet."""
    return {"disable": _QUIET, "leave": False}


def clear_bars() -> None:
    """Close every open bar (before an error line, so that it starts on a clean line)."""
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def step_bar(steps: Any, desc: str) -> Any:
    """Iterate over a sampler's timesteps with a step bar like diffusers' own (off when quiet)."""
    return tqdm(steps, desc=desc, unit="step", leave=False, disable=_QUIET, delay=1.0, file=sys.stderr)


class StageProgress:
    """A pipeline's ``progress`` callback: one bar per run, the current stage as its postfix.

    Args:
        desc: the bar's label.
        delay: seconds before the bar appears (short runs print nothing).
        stream: where to write (default stderr).
        enabled: False (or :func:`set_quiet`) → nothing at all.
    """

    def __init__(self, desc: str = "decompose", delay: float = 1.0, stream: TextIO | None = None,
                 enabled: bool = True) -> None:
        self.desc, self.delay, self.stream, self.enabled = desc, delay, stream, enabled
        self._bar: Any = None

    def __call__(self, stage: str, event: str, seconds: float) -> None:
        if not self.enabled or _QUIET:
            return
        if self._bar is None:
            self._bar = tqdm(desc=self.desc, unit="stage", delay=self.delay, file=self.stream or sys.stderr,
                             leave=False, dynamic_ncols=True)
        if event == "start":
            self._bar.set_postfix_str(stage, refresh=True)
        else:
            self._bar.update(1)

    def close(self) -> None:
        """End the bar (a new run starts a new one)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class ItemBar:
    """A bar over ``total`` items with ETA and items/s; :meth:`update` counts one finished item.

    Args:
        total: number of items.
        label: the bar's label (e.g. the config name).
        stream: where to write (default stderr).
        enabled: False (or :func:`set_quiet`) → nothing printed (items are still counted).
        delay: seconds before the bar appears.
    """

    def __init__(self, total: int, label: str = "", stream: TextIO | None = None, enabled: bool = True,
                 delay: float = 0.0, unit: str = "item") -> None:
        self.total = max(int(total), 0)
        self.label = label
        self.done = 0
        self.failed = 0
        self._bar = tqdm(total=self.total or None, desc=label or None, unit=unit, file=stream or sys.stderr,
                         disable=not enabled or _QUIET, delay=delay, dynamic_ncols=True, mininterval=0.2)

    @property
    def elapsed(self) -> float:
        return float(self._bar.format_dict.get("elapsed", 0.0))

    def eta(self) -> float:
        """Seconds left, from the mean time per finished item (NaN before the first)."""
        if self.done == 0:
            return float("nan")
        return self.elapsed / self.done * (self.total - self.done)

    def update(self, item: str, status: str = "ok", failed: bool = False) -> None:
        """Count one finished item (``failed``: it failed) and show ``item status`` beside the bar."""
        self.done += 1
        self.failed += bool(failed)
        if failed and not self._bar.disable:  # a failure stays on screen, above the bar
            self._bar.write(f"{self.label + ': ' if self.label else ''}{item} {status}", file=self._bar.fp)
        postfix = f"{item} {status}" + (f", {self.failed} failed" if self.failed else "")
        self._bar.set_postfix_str(postfix, refresh=False)
        self._bar.update(1)
        if self.total and self.done >= self.total:
            self.close()

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> ItemBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def item_bar(total: int, label: str = "", enabled: bool = True, **kwargs: Any) -> ItemBar:
    """An :class:`ItemBar` (use as a context manager)."""
    return ItemBar(total, label, enabled=enabled, **kwargs)
