"""Report writing shared by the evaluation commands: JSON, a short markdown report, PNG plots, a console table,
and a CPU / peak-memory meter.

Plots use matplotlib's Agg backend (no display needed); JSON turns NumPy values into plain numbers and NaN into null.
"""

from __future__ import annotations

import json
import math
import platform
import resource
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from anon_ros.core.errors import AnonRosError


class ReportError(AnonRosError):
    """The output folder cannot be written."""


def prepare_out(path: str | Path) -> Path:
    """Create the output folder (and parents); ReportError if that is impossible."""
    out = Path(path).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        msg = f'cannot create output folder {out}: {err}'
        raise ReportError(msg) from err
    return out


def _plain(obj: Any) -> Any:
    """JSON-ready copy: NumPy scalars/arrays to Python, non-finite floats to None, tuples to lists."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        return _plain(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as indented JSON (NaN becomes null)."""
    path.write_text(json.dumps(_plain(data), indent=2, allow_nan=False) + '\n', encoding='utf-8')
    return path


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    import os

    return {
        'python': platform.python_version(),
        'machine': platform.machine(),
        'cpus': os.cpu_count(),
        'processor': platform.processor() or platform.machine(),
        'date': time.strftime('%Y-%m-%d %H:%M:%S %z'),
    }


# ------------------------------------------------------------------------------------------------ formatting


def pct(x: float | None) -> str:
    """0.123 -> '12.3 %'; None/NaN -> 'n/a'."""
    return 'n/a' if x is None or not math.isfinite(x) else f'{100.0 * x:.1f} %'


def num(x: float | None, digits: int = 2) -> str:
    """A number with ``digits`` decimals; None/NaN -> 'n/a'."""
    return 'n/a' if x is None or not math.isfinite(x) else f'{x:.{digits}f}'


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A fixed-width console table."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h)) for i, h in enumerate(headers)]
    line = '  '.join(f'{h:>{w}}' if i else f'{h:<{w}}' for i, (h, w) in enumerate(zip(headers, widths, strict=True)))
    out = [line, '  '.join('-' * w for w in widths)]
    for r in rows:
        out.append('  '.join(f'{c:>{w}}' if i else f'{c:<{w}}' for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    return '\n'.join(out)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table."""
    out = ['| ' + ' | '.join(headers) + ' |', '|' + '|'.join('---' for _ in headers) + '|']
    out += ['| ' + ' | '.join(str(c) for c in r) + ' |' for r in rows]
    return '\n'.join(out)


@dataclass
class Markdown:
    """A report built section by section; images are referenced by file name (next to report.md)."""

    title: str
    parts: list[str] = field(default_factory=list)

    def para(self, text: str) -> None:
        self.parts.append(text.strip())

    def heading(self, text: str, level: int = 2) -> None:
        self.parts.append('#' * level + ' ' + text)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.parts.append(md_table(headers, rows))

    def image(self, path: Path | None, alt: str) -> None:
        if path is not None:
            self.parts.append(f'![{alt}]({path.name})')

    def bullets(self, items: Sequence[str]) -> None:
        self.parts.append('\n'.join(f'- {i}' for i in items))

    def write(self, path: Path) -> Path:
        path.write_text(f'# {self.title}\n\n' + '\n\n'.join(self.parts) + '\n', encoding='utf-8')
        return path


# ---------------------------------------------------------------------------------------------------- plots


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use('Agg', force=True)
    import matplotlib.pyplot as plt

    return plt


def bar_plot(path: Path, title: str, groups: Sequence[str], series: dict[str, Sequence[float | None]], ylabel: str,
             *, ylim: tuple[float, float] | None = None, percent: bool = False) -> Path:
    """Grouped bars: one group per entry of ``groups``, one bar per series; values printed on the bars."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(groups) * max(1, len(series)) * 0.6 + 2), 3.4), dpi=100)
    n = max(1, len(series))
    width = 0.8 / n
    x = np.arange(len(groups))
    for k, (name, values) in enumerate(series.items()):
        vals = np.array([np.nan if v is None else float(v) for v in values], float)
        shown = vals * 100 if percent else vals
        bars = ax.bar(x + (k - (n - 1) / 2) * width, np.nan_to_num(shown), width, label=name)
        for b, v in zip(bars, shown, strict=True):
            ax.annotate('n/a' if not np.isfinite(v) else (f'{v:.0f}' if percent else f'{v:.2g}'),
                        (b.get_x() + b.get_width() / 2, b.get_height()), ha='center', va='bottom', fontsize=8)
    ax.set_xticks(x, groups)
    ax.set_ylabel(ylabel + (' (%)' if percent else ''))
    if ylim is not None:
        ax.set_ylim(ylim[0] * (100 if percent else 1), ylim[1] * (100 if percent else 1))
    ax.set_title(title, fontsize=10)
    if len(series) > 1:
        ax.legend(fontsize=8)
    ax.grid(axis='y', alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def hist_plot(path: Path, title: str, data: dict[str, Sequence[float]], xlabel: str, *,
              vline: float | None = None, vlabel: str = '') -> Path:
    """Overlaid histograms (one per entry), with an optional vertical threshold line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4), dpi=100)
    finite = [float(v) for vs in data.values() for v in vs if v is not None and math.isfinite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if vline is not None:
        lo, hi = min(lo, vline), max(hi, vline)
    bins = np.linspace(lo, hi + 1e-9, 25)
    for name, vs in data.items():
        arr = np.array([v for v in vs if v is not None and math.isfinite(v)], float)
        if arr.size:
            ax.hist(arr, bins=bins, alpha=0.55, label=f'{name} (n={arr.size})')
    if vline is not None:
        ax.axvline(vline, color='k', ls='--', lw=1, label=vlabel or None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel('count')
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def stacked_bar_plot(path: Path, title: str, groups: Sequence[str], stages: dict[str, Sequence[float]],
                     ylabel: str) -> Path:
    """Stacked bars (e.g. per-stage milliseconds per configuration)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(groups) + 2.5), 3.6), dpi=100)
    bottom = np.zeros(len(groups))
    for name, values in stages.items():
        vals = np.nan_to_num(np.asarray(values, float))
        ax.bar(groups, vals, bottom=bottom, label=name)
        bottom += vals
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis='y', alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------- resources


@dataclass
class Usage:
    """Wall and CPU seconds of a measured block, CPU use relative to one core, and this process's peak RSS."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0

    @property
    def cpu_cores(self) -> float:
        """Average number of busy cores (CPU seconds / wall seconds)."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else float('nan')

    def as_dict(self) -> dict[str, float]:
        return {'wall_s': self.wall_s, 'cpu_s': self.cpu_s, 'cpu_cores': self.cpu_cores,
                'peak_rss_mb': self.peak_rss_mb}


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident memory of this process (or of its waited-for children) so far, MiB (Linux: ru_maxrss in KiB)."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024.0


@contextmanager
def measure() -> Iterator[Usage]:
    """``with measure() as u: ...`` fills ``u`` with the block's wall and CPU time (this process, all threads)."""
    u = Usage()
    w0, c0 = time.perf_counter(), time.process_time()
    try:
        yield u
    finally:
        u.wall_s = time.perf_counter() - w0
        u.cpu_s = time.process_time() - c0
        u.peak_rss_mb = peak_rss_mb()
