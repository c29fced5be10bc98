"""Evaluate a policy on seeded held-out tasks and summarise the episodes."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from agentrl.engines import Engine, EngineConfig, make_engine
from agentrl.env import EnvConfig
from agentrl.episode import Episode
from agentrl.resim import simulation_accuracy
from agentrl.rollout import RolloutConfig, collect_sync


@dataclass
class EvalConfig:
    every: int = 10  # iterations between evaluations (0 = only before and after training)
    tasks: int = 100
    split: str = "test"
    seed: int = 12345
    temperature: float = 0.0  # 0 = greedy

    def validate(self) -> None:
        if self.tasks < 0 or self.every < 0:
            raise ValueError("tasks and every must be >= 0")


def summarize(episodes: list[Episode]) -> dict[str, float]:
    """Success rate, mean reward, mean steps, invalid-action rate, failures and loop rate (share of
    episodes that came back to an observation they had seen: `Episode.revisits`) of a set of episodes."""
    if not episodes:
        return {"success_rate": 0.0, "mean_reward": 0.0, "mean_steps": 0.0, "invalid_action_rate": 0.0, "failed": 0.0,
                "loop_rate": 0.0}
    steps = sum(e.num_turns for e in episodes)
    summary = {
        "success_rate": float(np.mean([e.success for e in episodes])),
        "mean_reward": float(np.mean([e.reward for e in episodes])),
        "mean_steps": steps / len(episodes),
        "invalid_action_rate": sum(e.invalid_actions for e in episodes) / max(steps, 1),
        "failed": float(sum(e.failed for e in episodes)),
        "loop_rate": float(np.mean([e.revisits for e in episodes])),
    }
    sim = simulation_accuracy(episodes)  # only for policies that write ReSim traces
    if sim is not None:
        summary["sim_accuracy"] = sim
    return summary


def evaluate(
    engine: Engine, env_config: EnvConfig, rollout: RolloutConfig, cfg: EvalConfig,
    on_episode: Callable[[Episode], None] | None = None,
) -> tuple[dict[str, float], list[Episode]]:
    tasks = env_config.tasks(cfg.split, cfg.tasks, cfg.seed)
    episodes = collect_sync(
        engine, env_config, tasks, 1, eval_rollout(rollout, cfg), seed=cfg.seed, group_prefix="eval/",
        on_episode=on_episode,
    )
    return {**summarize(episodes), **env_config.metrics(episodes)}, episodes


def eval_rollout(rollout: RolloutConfig, cfg: EvalConfig) -> RolloutConfig:
    """The rollout settings an evaluation plays with (its own temperature)."""
    return replace(rollout, temperature=cfg.temperature)


def open_engine(model: str, engine_cfg: EngineConfig, seed: int = 0) -> Engine:
    """A fresh engine serving `model` (an HF id or path), as `agentrl eval`, `watch` and recipes
    use it: a checkpoint with LoRA experts is served with every family's adapter, each on its
    own requests. The caller closes it."""
    from agentrl.engines.base import routed_adapters

    adapters = routed_adapters(model)
    rank = max((a.peft_config.r for a in adapters), default=None)
    engine = make_engine(model, engine_cfg, seed, lora_rank=rank, routes=len(adapters))
    try:
        for adapter in adapters:
            engine.sync(adapter)
    except BaseException:
        engine.close()
        raise
    return engine


def evaluate_checkpoint(
    model: str, engine_cfg: EngineConfig, env_config: EnvConfig, rollout: RolloutConfig, cfg: EvalConfig,
    seed: int = 0, on_episode: Callable[[Episode], None] | None = None,
) -> tuple[dict[str, float], list[Episode]]:
    """`evaluate` on a fresh engine serving `model` (`open_engine`), stopped afterwards."""
    engine = open_engine(model, engine_cfg, seed)
    try:
        return evaluate(engine, env_config, rollout, cfg, on_episode)
    finally:
        engine.close()


@dataclass
class EvalCommand:
    """What `agentrl eval` runs: a model on `eval.tasks` seeded tasks of an environment."""

    model: str = ""
    env: EnvConfig = field(default_factory=EnvConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)


def run_eval_command(cfg: EvalCommand, out: str | None = None, plot: str | None = None) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from agentrl.episode import save_episodes

    console = Console()
    # a live bar only on a terminal: logs and pipes get the table alone
    progress = Progress(TextColumn("episodes"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, disable=not console.is_terminal)
    with progress:
        bar = progress.add_task("eval", total=cfg.eval.tasks)
        summary, episodes = evaluate_checkpoint(cfg.model, cfg.engine, cfg.env, cfg.rollout, cfg.eval,
                                                on_episode=lambda _: progress.advance(bar))
    table = Table(title=f"{cfg.model} on {cfg.eval.tasks} {cfg.eval.split} tasks (seed {cfg.eval.seed})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, f"{value:.1%}" if key.endswith("rate") else f"{value:.3f}")
    console.print(table)
    if out:
        save_episodes(episodes, str(out))
        print(f"episodes written to {out}")
    if plot:
        from agentrl.eval_plot import plot_episodes

        print(f"plot written to {plot_episodes(episodes, plot, title=table.title)}")
    return 0
