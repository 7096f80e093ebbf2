"""What a training run leaves beside its adapter: ``metrics.json`` and ``loss.png``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

METRICS = "metrics.json"
LOSS_PNG = "loss.png"


def losses(log_history: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """``(step, loss)`` of every logged training step (the Trainer's ``state.log_history``)."""
    return [(int(e["step"]), float(e["loss"])) for e in log_history if "loss" in e and "step" in e]


def write(out: Path, points: list[tuple[int, float]], facts: dict[str, Any]) -> dict[str, Any]:
    """Write ``metrics.json`` (facts + the curve) and the loss-curve PNG into ``out``."""
    metrics = {
        **facts,
        "loss_first": points[0][1] if points else None,
        "loss_last": points[-1][1] if points else None,
        "loss": [{"step": step, "loss": loss} for step, loss in points],
    }
    (out / METRICS).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    plot(points, out / LOSS_PNG, title=str(facts.get("base_model", "")))
    return metrics


def plot(points: list[tuple[int, float]], path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    if points:
        ax.plot([s for s, _ in points], [v for _, v in points], marker="o", markersize=3)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (assistant tokens)")
    ax.set_title(f"LoRA SFT — {Path(title).name}" if title else "LoRA SFT", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
