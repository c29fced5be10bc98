"""What every policy-gradient algorithm here shares: episodes -> batch, and the loss.

An algorithm is a dataclass of settings (its defaults are the paper's) registered
under a name; subclasses override `prepare` or `loss` only where the method differs.
The training loop never branches on an algorithm's name.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from agentrl.algorithms.advantages import advantage_estimator
from agentrl.algorithms.losses import aggregate, clipped_surrogate, ratio_bounds
from agentrl.algorithms.step_credit import anchor_step_advantages
from agentrl.env import EnvConfig, Task
from agentrl.episode import Episode
from agentrl.rollout import RolloutConfig, collect_sync


@dataclass
class Sample:
    """One training sequence with what the loss needs."""

    token_ids: list[int]
    loss_mask: list[int]
    behaviour_logprobs: list[float]
    advantage: float
    episode: int  # index of its episode within the batch
    weight: float = 1.0  # per-sample loss weight (e.g. duration-aware updates)
    family: str = ""  # its episode's task family: the LoRA expert the learner routes it to


@dataclass
class Batch:
    samples: list[Sample]
    episodes: list[Episode]  # the episodes that made it into `samples`, indexed by Sample.episode
    metrics: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for s in self.samples:  # one place for every algorithm's samples to learn their family
            episode = self.episodes[s.episode] if 0 <= s.episode < len(self.episodes) else None
            s.family = s.family or getattr(episode, "family", "")


@dataclass
class PolicyGradient:
    advantage: str = "loo"  # a name in ADVANTAGE_ESTIMATORS
    ratio_clip: str = "loop"  # "loop": [1/(1+eps), 1+eps]; "ppo": [1-eps, 1+eps_high]
    clip_eps: float = 0.1
    clip_eps_high: float | None = None
    aggregation: str = "episode_mean"  # or "token_mean"
    min_abs_advantage: float = 0.01  # drop episodes whose |A| is below this (they carry ~no signal)
    epochs: int = 2
    minibatch_episodes: int = 32  # 0 = the whole batch in one step
    group_minibatches: bool = False  # keep each task's rollouts in one minibatch (shared states dedupe)
    tis_cap: float | None = None  # truncate importance weights pi_old/pi_behaviour at this value
    # GiGPO-style step credit (step_credit.py): each turn's advantage += step_credit * its anchor-state
    # advantage; turns then train as separate sequences. 0 = episode-level credit only.
    step_credit: float = 0.0
    step_gamma: float = 0.95
    # duration-aware updates (RL for MLE agents): each turn trains as its own sample weighted by
    # its action's execution time / the batch's mean, so cheap fast actions don't dominate the gradient
    duration_weighting: bool = False

    def validate(self) -> None:
        advantage_estimator(self.advantage)
        ratio_bounds(self.ratio_clip, self.clip_eps, self.clip_eps_high)
        if self.aggregation not in ("episode_mean", "token_mean"):
            raise ValueError(f"aggregation must be episode_mean or token_mean, got {self.aggregation!r}")
        if self.epochs < 1 or self.minibatch_episodes < 0:
            raise ValueError("epochs must be >= 1 and minibatch_episodes >= 0")
        if self.clip_eps <= 0:
            raise ValueError("clip_eps must be > 0")
        if self.step_credit < 0 or not 0 < self.step_gamma <= 1:
            raise ValueError("step_credit must be >= 0 and step_gamma in (0, 1]")

    # -- rollouts ------------------------------------------------------------
    def collect(self, engine, env_config: EnvConfig, tasks: list[Task], k: int, rollout: RolloutConfig,
                *, seed: int, iteration: int) -> list[Episode]:
        """This iteration's episodes: `k` standard rollouts per task (Dyna-GRPO mixes in SimRollouts)."""
        return collect_sync(engine, env_config, tasks, k, rollout, seed=seed)

    # -- episodes -> batch ---------------------------------------------------
    def assign_advantages(self, episodes: list[Episode]) -> None:
        """Group by group_id (the K rollouts of a task) and set each episode's advantage."""
        estimate = advantage_estimator(self.advantage)
        groups: dict[str, list[Episode]] = defaultdict(list)
        for ep in episodes:
            groups[ep.group_id].append(ep)
        for members in groups.values():
            for ep, adv in zip(members, estimate(np.array([e.reward for e in members]))):
                ep.advantage = float(adv)

    def prepare(self, episodes: list[Episode]) -> Batch:
        usable = [e for e in episodes if not e.failed]  # a crash is not the policy's doing
        self.assign_advantages(usable)
        if self.step_credit:
            return self._prepare_with_step_credit(episodes, usable)
        kept = [e for e in usable if abs(e.advantage) >= self.min_abs_advantage and e.num_policy_tokens > 0]
        if self.duration_weighting:
            turns = [(i, ep, t) for i, ep in enumerate(kept) for t in ep.turns if t.completion_ids]
            samples = [Sample(*_fields(t.sequence()), ep.advantage, i, self.sample_weight(ep)) for i, ep, t in turns]
            metrics = self._batch_metrics(episodes, usable, kept)
            metrics.update(weight_by_duration(samples, [t.duration for _, _, t in turns]))
            return Batch(samples, kept, metrics)
        samples = [
            Sample(*_fields(s), ep.advantage, i, self.sample_weight(ep))
            for i, ep in enumerate(kept) for s in ep.sequences()
        ]
        return Batch(samples, kept, self._batch_metrics(episodes, usable, kept))

    def _prepare_with_step_credit(self, episodes: list[Episode], usable: list[Episode]) -> Batch:
        """One sample per turn, advantage = episode advantage + step_credit * anchor-state advantage."""
        steps = anchor_step_advantages(usable, self.step_gamma)
        kept, samples, durations = [], [], []
        for ep, step_advantages in zip(usable, steps):
            turn_samples = []
            for turn, step_advantage in zip(ep.turns, step_advantages):
                advantage = ep.advantage + self.step_credit * step_advantage
                if abs(advantage) >= self.min_abs_advantage and turn.completion_ids:
                    turn_samples.append((turn, advantage))
            if turn_samples:
                samples += [Sample(*_fields(t.sequence()), a, len(kept), self.sample_weight(ep)) for t, a in turn_samples]
                durations += [t.duration for t, _ in turn_samples]
                kept.append(ep)
        metrics = self._batch_metrics(episodes, usable, kept)
        if self.duration_weighting:
            metrics.update(weight_by_duration(samples, durations))
        metrics["batch/step_advantage_abs_mean"] = float(np.mean([abs(a) for row in steps for a in row])) if steps else 0.0
        return Batch(samples, kept, metrics)

    def _batch_metrics(self, episodes: list[Episode], usable: list[Episode], kept: list[Episode]) -> dict[str, float]:
        return {
            "batch/failed_episodes": float(len(episodes) - len(usable)),
            "batch/kept_fraction": len(kept) / max(len(episodes), 1),
            "batch/advantage_abs_mean": float(np.mean([abs(e.advantage) for e in kept])) if kept else 0.0,
        }

    def sample_weight(self, episode: Episode) -> float:
        return 1.0

    # -- the loss ------------------------------------------------------------
    def loss(
        self, logp: torch.Tensor, old_logp: torch.Tensor, behaviour_logp: torch.Tensor,
        advantages: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor, owner: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """All tensors are [rows, tokens] except advantages/weights/owner ([rows])."""
        low, high = ratio_bounds(self.ratio_clip, self.clip_eps, self.clip_eps_high)
        token_loss, clipped = clipped_surrogate(logp, old_logp, advantages[:, None], low, high)
        token_loss = token_loss * weights[:, None]
        if self.tis_cap is not None:
            token_loss = token_loss * torch.exp(old_logp - behaviour_logp).clamp(max=self.tis_cap).detach()
        loss = aggregate(token_loss, mask, owner, self.aggregation)
        m = mask.float()
        return loss, {"loss/clip_fraction": float((clipped * m).sum() / m.sum().clamp(min=1))}


def _fields(seq) -> tuple[list[int], list[int], list[float]]:
    return seq.token_ids, seq.loss_mask, seq.logprobs


def weight_by_duration(samples: list[Sample], durations: list[float]) -> dict[str, float]:
    """Scale each sample's weight by duration / mean duration of the batch (in place); the
    weights' spread goes to the run log. All-zero durations (no timed actions) leave weights be."""
    mean = float(np.mean(durations)) if durations else 0.0
    if mean <= 0:
        return {"batch/duration_weight_mean": 1.0, "batch/duration_weight_min": 1.0, "batch/duration_weight_max": 1.0}
    scales = [d / mean for d in durations]
    for sample, scale in zip(samples, scales):
        sample.weight *= scale
    return {"batch/duration_weight_mean": float(np.mean(scales)), "batch/duration_weight_min": float(min(scales)),
            "batch/duration_weight_max": float(max(scales)), "batch/duration_mean_s": mean}


ALGORITHMS: dict[str, type[PolicyGradient]] = {}


def register_algorithm(name: str) -> Callable[[type[PolicyGradient]], type[PolicyGradient]]:
    def add(cls: type[PolicyGradient]) -> type[PolicyGradient]:
        ALGORITHMS[name] = cls
        return cls
    return add


def make_algorithm(name: str, **overrides) -> PolicyGradient:
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r} (known: {', '.join(sorted(ALGORITHMS))})")
    return ALGORITHMS[name](**overrides)
