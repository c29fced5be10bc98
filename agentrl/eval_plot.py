"""`agentrl eval --plot FILE.png`: how an evaluation's episodes ended, as one figure."""
from __future__ import annotations

from pathlib import Path

from agentrl.episode import Episode


def plot_episodes(episodes: list[Episode], path: str | Path, title: str = "") -> Path:
    """Histograms of episode reward and length, each split into solved and unsolved episodes
    (stacked), so a success rate's spread and where the failures end are visible at once."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if not episodes:
        raise ValueError("no episodes to plot")
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"--plot: expected a .png file name, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    groups = [("solved", [e for e in episodes if e.success], "tab:green"),
              ("unsolved", [e for e in episodes if not e.success], "tab:red")]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, value, label in ((left, lambda e: e.reward, "episode reward"), (right, lambda e: e.num_turns, "turns")):
        data = [[value(e) for e in eps] for _, eps, _ in groups]
        ax.hist(data, bins=min(20, max(1, len({v for d in data for v in d}))), stacked=True,
                label=[f"{name} ({len(eps)})" for name, eps, _ in groups], color=[c for _, _, c in groups])
        ax.set_xlabel(label)
        ax.set_ylabel("episodes")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of episodes
        ax.grid(alpha=0.3)
    left.legend()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
