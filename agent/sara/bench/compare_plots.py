"""The plots of ``sara bench compare`` (matplotlib, Agg), from :class:`~sara.bench.compare.Tables`.

leaderboard.png         accuracy with Wilson 95 % intervals, runs given as folders in red
task_heatmap.png        task type x model accuracy
task_bars.png           grouped bars: per task type one bar per model
task_difficulty.png     mean accuracy per task type (hardest first), standard deviation as bars
accuracy_vs_size.png    accuracy against parameters (log scale) for models whose size is known
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sara.bench.compare import DESCRIPTIONS, Tables, percent
from sara.bench.runs import TASKS

MINE = "#d62728"
THEIRS = "#1f77b4"
FILES = (
    "leaderboard.png",
    "task_heatmap.png",
    "task_bars.png",
    "task_difficulty.png",
    "accuracy_vs_size.png",
)


def draw(found: Tables, out: Path, mine: set[int]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    paths = [out / name for name in FILES]
    _leaderboard(paths[0], found, mine)
    _heatmap(paths[1], found, mine)
    _bars(paths[2], found)
    _difficulty(paths[3], found)
    _size(paths[4], found, mine)
    return paths


def _save(fig: Any, path: Path, bottom: float = 0.0) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout(rect=(0, bottom, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _leaderboard(path: Path, found: Tables, mine: set[int]) -> None:
    import matplotlib.pyplot as plt

    rows = found.rows["leaderboard.csv"][::-1]
    runs = found.runs[::-1]
    values = [float(r["Accuracy (%)"]) for r in rows]
    low = [v - float(r["CI95 Low (%)"]) for v, r in zip(values, rows, strict=True)]
    high = [float(r["CI95 High (%)"]) - v for v, r in zip(values, rows, strict=True)]
    colours = [MINE if id(r) in mine else THEIRS for r in runs]
    fig, ax = plt.subplots(figsize=(10, 0.4 * len(rows) + 1.6))
    bars = ax.barh([str(r["Model"]) for r in rows], values, color=colours)
    del bars
    ax.errorbar(values, range(len(rows)), xerr=[low, high], fmt="none", ecolor="black", lw=0.8)
    for y, row in enumerate(rows):  # the value just right of the interval, clear of it
        ax.text(
            float(row["CI95 High (%)"]) + 1,
            y,
            f"{row['Accuracy (%)']:.1f}",
            va="center",
            fontsize=8,
        )
    ax.set_xlim(0, 112)
    ax.set_xlabel("pass@1 accuracy (%), with Wilson 95 % interval")
    ax.set_title("MedAgentBench: runs compared (red: runs given as folders)")
    ax.tick_params(axis="y", labelsize=8)
    _save(fig, path)


def _heatmap(path: Path, found: Tables, mine: set[int]) -> None:
    import matplotlib.pyplot as plt

    names = [found.labels[id(r)] for r in found.runs]
    grid = [[percent(r, t) for t in TASKS] for r in found.runs]
    fig, ax = plt.subplots(figsize=(11, 0.42 * len(names) + 1.8))
    image = ax.imshow(
        [[float("nan") if v is None else v for v in row] for row in grid],
        cmap="RdYlGn",
        vmin=0,
        vmax=100,
        aspect="auto",
    )
    ax.set_xticks(range(len(TASKS)), TASKS, fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for y, row in enumerate(grid):
        for x, value in enumerate(row):
            if value is not None:
                ink = "white" if value < 15 or value > 85 else "black"
                ax.text(x, y, f"{value:.0f}", ha="center", va="center", fontsize=7, color=ink)
    for tick, run in zip(ax.get_yticklabels(), found.runs, strict=True):
        if id(run) in mine:
            tick.set_color(MINE)
    fig.colorbar(image, ax=ax, label="accuracy (%)")
    ax.set_title("Accuracy by task type (rows: runs, best first)")
    _save(fig, path)


def _bars(path: Path, found: Tables) -> None:
    import matplotlib.pyplot as plt

    count = len(found.runs)
    width = 0.85 / max(count, 1)
    cmap = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(max(12, 1.2 * len(TASKS) + 0.05 * count * len(TASKS)), 5.5))
    for i, run in enumerate(found.runs):
        xs = [t + (i - (count - 1) / 2) * width for t in range(len(TASKS))]
        values = [percent(run, task) or 0.0 for task in TASKS]
        ax.bar(xs, values, width, color=cmap(i % 20), label=found.labels[id(run)])
    ax.set_xticks(range(len(TASKS)), TASKS)
    ax.set_ylim(0, 105)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Accuracy per task type, one bar per run (legend in leaderboard order)")
    ax.legend(fontsize=7, ncol=1, loc="center left", bbox_to_anchor=(1.0, 0.5))
    _save(fig, path)


def _difficulty(path: Path, found: Tables) -> None:
    import matplotlib.pyplot as plt

    rows = found.rows["task_difficulty.csv"]
    names = [r["Task"] + "\n" + _wrap(DESCRIPTIONS[r["Task"]], 16) for r in rows]
    means = [float(r["Average Accuracy (%)"]) for r in rows]
    spread = [float(r["Std Dev"]) for r in rows]
    fig, ax = plt.subplots(figsize=(12, 5.2))
    ax.bar(names, means, yerr=spread, color=THEIRS, capsize=3, ecolor="#444444")
    for x, mean in enumerate(means):  # inside the bar's foot, clear of the error bar
        ax.text(x, 2, f"{mean:.1f}", ha="center", va="bottom", fontsize=8, color="white")
    ax.set_ylim(0, 125)
    ax.set_ylabel("mean accuracy over the runs (%) ± std dev")
    ax.set_title("Task difficulty (hardest first)")
    ax.tick_params(axis="x", labelsize=7)
    _save(fig, path)


def _size(path: Path, found: Tables, mine: set[int]) -> None:
    import matplotlib.pyplot as plt

    sized = [(r, r.size_b) for r in found.runs if r.size_b]
    unsized = [found.labels[id(r)] for r in found.runs if not r.size_b]
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for run, size in sized:
        colour = MINE if id(run) in mine else THEIRS
        ax.scatter([size], [run.accuracy], color=colour, s=40)
        ax.annotate(
            found.labels[id(run)], (size, run.accuracy), fontsize=7,
            xytext=(4, 3), textcoords="offset points",
        )  # fmt: skip
    if sized:
        ax.set_xscale("log")
    ax.set_ylim(0, 105)
    ax.set_xlabel("parameters (billions, total; log scale)")
    ax.set_ylabel("pass@1 accuracy (%)")
    ax.set_title(f"Accuracy vs model size ({len(sized)} runs of known size)")
    if unsized:
        note = _wrap("size unknown (not plotted): " + ", ".join(unsized), 150)
        fig.text(0.01, 0.01, note, fontsize=6, va="bottom")
    _save(fig, path, bottom=0.03 + 0.025 * (note.count("\n") + 1) if unsized else 0.0)


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))
