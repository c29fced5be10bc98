"""The run directory: config, metrics.jsonl, tracker logs, sampled episodes, a plot."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from agentrl.episode import Episode, save_episodes
from agentrl.evaluation import summarize


def episode_metrics(episodes: list[Episode], prefix: str) -> dict[str, float]:
    return {f"{prefix}/{k}": v for k, v in summarize(episodes).items()}


class RunLog:
    def __init__(self, output_dir: str | Path, accelerator=None, enabled: bool = True) -> None:
        self.dir = Path(output_dir)
        self.accelerator = accelerator
        self.enabled = enabled  # only the main process writes
        if enabled:
            self.dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.dir / "metrics.jsonl"

    def write(self, iteration: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.metrics_path.open("a") as f:
            f.write(json.dumps({"iteration": iteration, **metrics}) + "\n")
        if self.accelerator is not None and self.accelerator.trackers:
            self.accelerator.log({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=iteration)

    def episodes(self, name: str, episodes: list[Episode], limit: int) -> None:
        if self.enabled and limit and episodes:
            (self.dir / "episodes").mkdir(exist_ok=True)
            save_episodes(episodes[:limit], str(self.dir / "episodes" / f"{name}.jsonl"))

    def history(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]

    def truncate(self, last_iteration: int) -> None:
        """On resume: forget what a killed run logged after its last checkpoint."""
        if self.enabled and self.metrics_path.exists():
            kept = [r for r in self.history() if r["iteration"] <= last_iteration]
            self.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def plot(self, filename: str = "progress.png") -> Path | None:
        """Training reward/success per iteration and eval success, as a PNG."""
        rows = self.history()
        if not self.enabled or not rows:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        for key, label in [("train/success_rate", "train success (sampled)"), ("train/mean_reward", "train reward")]:
            pts = [(r["iteration"], r[key]) for r in rows if key in r]
            if pts:
                ax.plot(*np.array(pts).T, label=label, alpha=0.7)
        pts = [(r["iteration"], r["eval/success_rate"]) for r in rows if "eval/success_rate" in r]
        if pts:
            ax.plot(*np.array(pts).T, "o-", label="eval success (greedy)", linewidth=2)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = self.dir / filename
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path
