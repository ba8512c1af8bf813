"""Draw the benchmark suite's charts: one PNG per workload, from the suite's JSON.

    python charts.py RESULTS_JSON OUTPUT_DIR

Run by ``suite.py`` in the ``charts`` peer's virtualenv (matplotlib; nothing of sandq's), so it uses
the standard library and matplotlib only. Prints the path of every PNG it writes, one a line.

Throughput-like workloads are grouped bars (one group per concurrency or kind of add, one bar per
contender), on a log scale when the tallest bar is over 20 times the shortest; sandq's bars are red
with a black edge, the others muted. Latency is p50 (solid) and p99 (lighter) bars per contender,
add->active and add->completed side by side. A contender without a figure (not installed, failed) has
no bar and is listed under the chart with the reason.
"""

from __future__ import annotations

import json
import pathlib
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

SANDQ = "#d62728"
OTHERS = ("#1f77b4", "#7f7f7f", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#bcbd22", "#e377c2")
LOG_ABOVE = 20.0  # tallest / shortest bar beyond which the axis is logarithmic

Series = tuple[str, list[float | None], bool]  # label, one value per group, highlighted


def short(value: float) -> str:
    """A bar's label: 2.6k, 61k, 1.2M, 0.84, 12."""
    if value >= 1e6:
        return f"{value / 1e6:.1f}M"
    if value >= 1e4:
        return f"{value / 1e3:.0f}k"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    if value >= 10:
        return f"{value:.0f}"
    return f"{value:.2g}"


def plain_log(axis: Any) -> None:
    """Log-scale ticks as plain numbers (1, 10, 100, 1k), no minor labels."""
    axis.set_major_formatter(FuncFormatter(lambda v, _: short(v) if v >= 1 else f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def wants_log(values: Sequence[float | None]) -> bool:
    positive = [v for v in values if v is not None and v > 0]
    return bool(positive) and max(positive) / min(positive) > LOG_ABOVE


def bars(
    ax: Axes,
    groups: Sequence[str],
    series: Sequence[Series],
    unit: str,
    *,
    colours: Sequence[str] | None = None,
    hatches: Sequence[str] | None = None,
    labels: Sequence[Sequence[str]] | None = None,
    reach: float = 0.0,
) -> None:
    """Grouped bars: ``series`` side by side within each of ``groups``."""
    count = max(1, len(series))
    width = 0.8 / count
    others = iter(OTHERS * 4)
    values = [v for _, vs, _ in series for v in vs]
    log = wants_log(values)
    for index, (label, numbers, highlight) in enumerate(series):
        colour = colours[index] if colours else (SANDQ if highlight else next(others))
        xs = [g + (index - (count - 1) / 2) * width for g in range(len(groups))]
        present = [(x, v) for x, v in zip(xs, numbers, strict=True) if v is not None and v > 0]
        if not present:
            continue
        drawn = ax.bar(
            [x for x, _ in present],
            [v for _, v in present],
            width * 0.92,
            label=label,
            color=colour,
            edgecolor="black" if highlight else colour,
            linewidth=1.2 if highlight else 0.5,
            hatch=hatches[index] if hatches else None,
            zorder=3,
        )
        shown = [
            labels[index][g] if labels else short(v) for g, v in enumerate(numbers) if v is not None and v > 0
        ]
        for rect, text in zip(drawn, shown, strict=True):
            ax.annotate(
                text,
                (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=7 if count <= 6 else 6,
                fontweight="bold" if highlight else "normal",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.3, "alpha": 0.85},
                zorder=5,
            )
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(unit + (" (log scale)" if log else ""))
    if log:
        ax.set_yscale("log")
        plain_log(ax.yaxis)
    ax.grid(axis="y", alpha=0.3, zorder=0)
    ax.spines[["top", "right"]].set_visible(False)
    top = max([reach, *(v for v in values if v is not None)], default=1.0)
    if not log:
        ax.set_ylim(0, top * 1.15)
    else:
        lowest = min((v for v in values if v is not None and v > 0), default=1.0)
        ax.set_ylim(lowest / 2, top * 2.5)
    legend = ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for text in legend.get_texts():
        if any(text.get_text() == label and highlight for label, _, highlight in series):
            text.set_fontweight("bold")


def cell(row: dict[str, Any], key: str) -> float | None:
    value = row["cells"].get(key, {}).get("value")
    return None if value is None else float(value)


def missing(workload: dict[str, Any]) -> list[str]:
    """Rows or cells without a figure, with the reason."""
    lines = []
    for row in workload["rows"]:
        if row.get("absent"):
            lines.append(f"{row['label']}: {row['absent']}")
            continue
        for key, c in row["cells"].items():
            reason = f"FAILED: {c['error']}" if c.get("error") else c.get("absent")
            if reason:
                lines.append(f"{row['label']} ({key}): {reason}")
                break
    return [line if len(line) < 120 else line[:117] + "..." for line in lines]


def figure(report: dict[str, Any], workload: dict[str, Any], panels: int = 1) -> tuple[Figure, list[Axes]]:
    gaps = missing(workload)
    width = 6.2 * panels if panels > 1 else 10.0
    fig, axes = plt.subplots(1, panels, figsize=(width, 5.0 + 0.16 * len(gaps)))
    listed = list(axes) if panels > 1 else [axes]
    host, suite = report["machine"], report["suite"]
    fig.suptitle(textwrap.fill(workload["title"], 90), fontsize=11, fontweight="bold")
    footer = (
        f"{suite['started'][:10]}, {suite['mode']} run, best of {suite['rounds']} round(s); {host['cpu']}, "
        f"{host['cores']} cores; Python {host['python']}; Redis {host['redis']}"
    )
    fig.text(0.01, 0.01, "\n".join([*gaps, footer]), fontsize=7, va="bottom", color="#444444")
    fig.subplots_adjust(bottom=0.12 + 0.032 * len(gaps), top=0.86, left=0.08, right=0.78, wspace=0.55)
    return fig, listed


def series_of(workload: dict[str, Any], keys: Sequence[str]) -> list[Series]:
    found: list[Series] = []
    for row in workload["rows"]:
        values = [cell(row, key) for key in keys]
        if any(v is not None for v in values):
            found.append((row["label"], values, bool(row["highlight"])))
    return found


def throughput(report: dict[str, Any], workload: dict[str, Any]) -> Figure:
    keys = [c["key"] for c in workload["columns"]]
    fig, (ax,) = figure(report, workload)
    bars(ax, [c["heading"] for c in workload["columns"]], series_of(workload, keys), workload["unit"])
    return fig


def cpu(report: dict[str, Any], workload: dict[str, Any]) -> Figure:
    """Grouped bars labelled with jobs/s and the share of the cores' limit; the limit dashed."""
    columns = workload["columns"]
    keys = [c["key"] for c in columns]
    info = workload["info"]
    limits = info.get("limit", {})
    series = series_of(workload, keys)
    labels = []
    for label, values, _ in series:
        shares = info.get("efficiency", {}).get(label, {})
        labels.append(
            [
                "" if v is None else f"{short(v)}\n{shares[k]:.0%}" if shares.get(k) else short(v)
                for k, v in zip(keys, values, strict=True)
            ]
        )
    fig, (ax,) = figure(report, workload)
    reach = max(limits.values(), default=0.0) * 1.1
    bars(ax, [c["heading"] for c in columns], series, workload["unit"], labels=labels, reach=reach)
    for index, key in enumerate(keys):
        limit = limits.get(key)
        if limit:
            ax.hlines(limit, index - 0.45, index + 0.45, colors="black", linestyles="dashed", zorder=4.5)
    handles, names = ax.get_legend_handles_labels()
    handles.append(plt.Line2D([], [], color="black", linestyle="dashed"))
    names.append("cores' limit (Python work)")
    ax.legend(handles, names, fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def latency(report: dict[str, Any], workload: dict[str, Any]) -> Figure:
    """Horizontal bars, one pair (p50, p99) per contender, the two stages on one shared scale."""
    fig, axes = figure(report, workload, panels=2)
    fig.subplots_adjust(left=0.17, right=0.97, wspace=0.08)
    rows = [r for r in workload["rows"] if cell(r, "active_p50") is not None]
    stages = (("active", "add -> active"), ("completed", "add -> completed"))
    values = [cell(r, f"{stage}_{q}") for r in rows for stage, _ in stages for q in ("p50", "p99")]
    log = wants_log(values)
    top = max((v for v in values if v is not None), default=1.0)
    bottom = min((v for v in values if v is not None and v > 0), default=1.0)
    for index, (ax, (stage, name)) in enumerate(zip(axes, stages, strict=True)):
        ys = list(range(len(rows)))[::-1]
        for offset, q, light in ((0.2, "p50", False), (-0.2, "p99", True)):
            numbers = [cell(r, f"{stage}_{q}") or 0.0 for r in rows]
            colours = [
                ("#ff9896" if light else SANDQ) if r["highlight"] else ("#aec7e8" if light else "#1f77b4")
                for r in rows
            ]
            drawn = ax.barh([y + offset for y in ys], numbers, 0.38, color=colours, zorder=3, label=q)
            for rect, v in zip(drawn, numbers, strict=True):
                ax.annotate(
                    f"{v:.2f}" if v < 10 else f"{v:.0f}",
                    (rect.get_width(), rect.get_y() + rect.get_height() / 2),
                    xytext=(2, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=7,
                )
        ax.set_yticks(ys, [r["label"] for r in rows] if index == 0 else [""] * len(rows))
        if index == 0:
            for tick, row in zip(ax.get_yticklabels(), rows, strict=True):
                if row["highlight"]:
                    tick.set_color(SANDQ)
                    tick.set_fontweight("bold")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("ms" + (" (log scale)" if log else ""))
        if log:
            ax.set_xscale("log")
            plain_log(ax.xaxis)
            ax.set_xlim(bottom / 1.5, top * 3)
        else:
            ax.set_xlim(0, top * 1.15)
        ax.grid(axis="x", alpha=0.3, zorder=0)
        ax.spines[["top", "right"]].set_visible(False)
    axes[1].legend(
        handles=[
            plt.Rectangle((0, 0), 1, 1, color="#1f77b4"),
            plt.Rectangle((0, 0), 1, 1, color="#aec7e8"),
        ],
        labels=["p50 (sandq: red)", "p99 (lighter)"],
        fontsize=8,
        frameon=False,
        loc="lower right",
    )
    return fig


def flat(report: dict[str, Any], workload: dict[str, Any]) -> Figure:
    fig, (left, right) = figure(report, workload, panels=2)
    groups = [row["label"] for row in workload["rows"]]
    rate = [cell(row, "rate") for row in workload["rows"]]
    rss = [cell(row, "rss_mib") for row in workload["rows"]]
    bars(left, groups, [("sandq no-op jobs/s", rate, True)], "jobs/s")
    bars(right, groups, [("supervisor peak RSS", rss, True)], "MiB")
    left.set_title("throughput", fontsize=10)
    right.set_title("supervisor memory", fontsize=10)
    return fig


def kill(report: dict[str, Any], workload: dict[str, Any]) -> Figure:
    fig, (ax,) = figure(report, workload)
    groups = ["kill (median)", "kill (max)", "respawn (median)", "respawn (max)"]
    keys = ["kill_ms", "kill_max_ms", "respawn_ms", "respawn_max_ms"]
    series = series_of(workload, keys)
    colours = [SANDQ if index == 0 else "#ff9896" for index in range(len(series))]
    bars(ax, groups, series, "ms", colours=colours)
    return fig


DRAW = {"noop": throughput, "cpu": cpu, "latency": latency, "enqueue": throughput, "flat": flat, "kill": kill}


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    report = json.loads(pathlib.Path(argv[0]).read_text())
    output = pathlib.Path(argv[1])
    output.mkdir(parents=True, exist_ok=True)
    for key, workload in report["workloads"].items():
        draw = DRAW.get(key)
        if draw is None:
            continue
        fig = draw(report, workload)
        path = output / f"{key}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
