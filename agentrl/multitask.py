"""Multi-task training: several env families behind one EnvConfig, and a sampler that
spends each iteration's tasks where the policy is still weak.

`MultiTaskConfig` bundles family configs (two Sokoban difficulty levels, ALFWorld, ...)
under names; its tasks are the families' tasks with ids `<family>/<inner id>`, and its env
routes each episode to the right family's env. `FamilySampler` follows ScaleZero's task
scheduling: a family whose running train success reaches `solved_threshold` stops
collecting data (its tasks would only spend rollout compute on already-learned skills and
let easy families dominate the gradient), and the unsolved families share the batch with
weights 1 - success, so the hardest ones get most of it. When every family is solved it
samples them uniformly rather than returning an empty batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from agentrl.env import Env, EnvConfig, Step, Task


def episode_family(ep: Any) -> str:
    """The family an episode was played in (`Episode.family`, else its task id's prefix)."""
    return getattr(ep, "family", "") or ep.task_id.split("/", 1)[0]


def _wrap(family: str, task: Task) -> Task:
    return Task(f"{family}/{task.id}", {"family": family, "task": task})


def _largest_remainder(weights: list[float], total: int, order: list[int]) -> list[int]:
    """Integer shares of `total` proportional to `weights` that sum exactly to `total`; the
    leftover units go to the largest fractional parts, ties broken by position in `order`."""
    scale = sum(weights)
    if scale <= 0:  # every weight 0 (success 1 below a threshold > 1): share equally
        weights, scale = [1.0] * len(weights), float(len(weights))
    shares = [total * w / scale for w in weights]
    counts = [int(s) for s in shares]
    rank = {i: r for r, i in enumerate(order)}
    # rounded so float noise (0.3 vs 0.30000000000000004) cannot decide a tie
    by_remainder = sorted(range(len(weights)), key=lambda i: (-round(shares[i] - counts[i], 9), rank[i]))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


@dataclass
class MultiTaskConfig(EnvConfig):
    """Several environment families trained together; `families` maps a name to its config."""

    families: dict[str, EnvConfig] = field(default_factory=dict)
    # each family's share of `tasks()` (SFT demonstrations, the tokenizer's corpus, evaluation);
    # families left out weigh 1. RL batches are FamilySampler's, by success instead.
    weights: dict[str, float] = field(default_factory=dict)

    def validate(self) -> None:
        from agentrl.config import validate as validate_config

        if not self.families:
            raise ValueError("families: needs at least one family")
        unknown = [f for f in self.weights if f not in self.families]
        if unknown:
            raise ValueError(f"weights: {', '.join(map(repr, unknown))} not in families ({', '.join(self.families)})")
        if any(w < 0 for w in self.weights.values()) or not any(self.weights.get(f, 1.0) > 0 for f in self.families):
            raise ValueError(f"weights: must be >= 0 with at least one family above 0 (got {self.weights})")
        for name, cfg in self.families.items():
            if not isinstance(name, str) or not name or "/" in name:
                raise ValueError(f"families: names must be non-empty and contain no '/' (got {name!r})")
            if not isinstance(cfg, EnvConfig):
                raise ValueError(f"families.{name}: expected an EnvConfig (got {type(cfg).__name__})")
            try:  # re-runs the family's __post_init__ and validate(), as for a top-level env
                validate_config(cfg)
            except ValueError as e:
                raise ValueError(f"families.{name}: {e}") from e

    def _family(self, family: str) -> EnvConfig:
        if family not in self.families:
            raise ValueError(f"unknown family {family!r} (families: {', '.join(self.families)})")
        return self.families[family]

    def make(self) -> MultiTaskEnv:
        return MultiTaskEnv(self)

    def family_tasks(self, family: str, split: str, n: int, seed: int) -> list[Task]:
        """`n` tasks of one family, ids `<family>/<inner id>`."""
        return [_wrap(family, t) for t in self._family(family).tasks(split, n, seed)] if n else []

    def family_counts(self, n: int) -> dict[str, int]:
        """How many of `n` tasks each family gets: shares by `weights` (evenly by default);
        leftover tasks go to the largest fractional shares, the earlier family on a tie."""
        shares = [self.weights.get(f, 1.0) for f in self.families]
        return dict(zip(self.families, _largest_remainder(shares, n, list(range(len(shares))))))

    def tasks(self, split: str, n: int, seed: int) -> list[Task]:
        """`n` tasks split over the families by `family_counts`, in family order."""
        tasks: list[Task] = []
        for family, count in self.family_counts(n).items():
            tasks += self.family_tasks(family, split, count, seed)
        return tasks

    def extra_texts(self) -> list[str]:
        texts = [t for cfg in self.families.values() for t in cfg.extra_texts()]
        return list(dict.fromkeys(texts))

    def expert_actions(self, task: Task) -> list[str] | None:
        return self._family(task.data["family"]).expert_actions(task.data["task"])

    def concurrency_limit(self) -> int | None:
        limits = [lim for cfg in self.families.values() if (lim := cfg.concurrency_limit()) is not None]
        return min(limits) if limits else None

    def metrics(self, episodes: list) -> dict[str, float]:
        """`family/<f>/<metric>`: `summarize` and the family's own metrics over its episodes.
        Families' own metrics see their inner task ids (the `<family>/` prefix stripped)."""
        from agentrl.evaluation import summarize

        out: dict[str, float] = {}
        for family, cfg in self.families.items():
            eps = [e for e in episodes if episode_family(e) == family]
            if not eps:
                continue
            inner = [replace(e, task_id=e.task_id.removeprefix(f"{family}/")) for e in eps]
            for key, value in {**summarize(eps), **cfg.metrics(inner)}.items():
                out[f"family/{family}/{key}"] = value
        return out


class MultiTaskEnv(Env):
    """Routes each episode to its family's env (one env per family, built on first use)."""

    def __init__(self, config: MultiTaskConfig):
        self.config = config
        self.envs: dict[str, Env] = {}
        self.family: str | None = None

    @property  # type: ignore[override]
    def system_prompt(self) -> str | None:
        return self.envs[self.family].system_prompt if self.family is not None else None

    def _env(self) -> Env:
        if self.family is None:
            raise RuntimeError("call reset() before using a MultiTaskEnv")
        return self.envs[self.family]

    def reset(self, task: Task) -> str:
        family = task.data.get("family")
        cfg = self.config._family(family)
        if family not in self.envs:
            self.envs[family] = cfg.make()
        self.family = family
        return self.envs[family].reset(task.data["task"])

    def step(self, action: str) -> Step:
        return self._env().step(action)

    def close(self) -> None:
        envs, self.envs, self.family = self.envs, {}, None
        for env in envs.values():
            env.close()

    def snapshot(self) -> Any:
        return (self.family, self._env().snapshot())  # the family too: restore may follow a reset elsewhere

    def restore(self, snapshot: Any) -> None:
        family, inner = snapshot
        self.family = family
        self._env().restore(inner)

    def candidate_actions(self) -> list[str]:
        return self._env().candidate_actions()

    def state_value(self) -> float | None:
        return self._env().state_value()


class FamilySampler:
    """`TaskSampler` for a `MultiTaskConfig`: ScaleZero-style per-family allocation (see the
    module docstring). Call `observe(train_episodes)` after each iteration.

    `ema` is the weight of the old value (success <- ema * success + (1 - ema) * rate; the first
    observation sets it); `min_tasks` is a floor per unsolved family, so a nearly solved family
    still gets episodes that can update its success."""

    def __init__(self, config: MultiTaskConfig, tasks_per_iteration: int, seed: int = 0,
                 solved_threshold: float = 0.9, ema: float = 0.5, min_tasks: int = 0):
        if tasks_per_iteration < 1:
            raise ValueError(f"tasks_per_iteration must be >= 1 (got {tasks_per_iteration})")
        if not 0.0 <= ema < 1.0:
            raise ValueError(f"ema must be in [0, 1) (got {ema})")
        if min_tasks < 0 or min_tasks * len(config.families) > tasks_per_iteration:
            raise ValueError(f"min_tasks must be in [0, tasks_per_iteration / families] (got {min_tasks})")
        self.config = config
        self.tasks_per_iteration = tasks_per_iteration
        self.seed = seed
        self.solved_threshold = solved_threshold
        self.ema = ema
        self.min_tasks = min_tasks
        self.families = list(config.families)
        self._success: dict[str, float] = {}  # observed families only
        self.env_steps: dict[str, int] = dict.fromkeys(self.families, 0)
        self.last_allocation: dict[str, int] = dict.fromkeys(self.families, 0)

    def success(self) -> dict[str, float]:
        """Running train success per family (0 until first observed)."""
        return {f: self._success.get(f, 0.0) for f in self.families}

    def solved(self) -> list[str]:
        return [f for f, s in self.success().items() if s >= self.solved_threshold]

    def observe(self, episodes: list) -> None:
        """Fold one iteration's train episodes into each family's success and env-step count."""
        groups: dict[str, list] = {}
        for ep in episodes:
            family = episode_family(ep)
            if family not in self.env_steps:
                raise ValueError(f"episode {ep.episode_id} is of unknown family {family!r}")
            groups.setdefault(family, []).append(ep)
        for family, eps in groups.items():
            rate = sum(bool(e.success) for e in eps) / len(eps)
            old = self._success.get(family)
            self._success[family] = rate if old is None else self.ema * old + (1 - self.ema) * rate
            self.env_steps[family] += sum(e.num_turns for e in eps)

    def allocation(self, iteration: int) -> dict[str, int]:
        """Tasks per family for `iteration`, from the current success values (sums to
        tasks_per_iteration). Ties rotate with the iteration so none is always favoured."""
        success = self.success()
        unsolved = [i for i, f in enumerate(self.families) if success[f] < self.solved_threshold]
        order = [(iteration + k) % len(self.families) for k in range(len(self.families))]
        counts = [0] * len(self.families)
        if not unsolved:  # all solved: keep training on everything rather than stop
            return dict(zip(self.families, _largest_remainder([1.0] * len(counts), self.tasks_per_iteration, order)))
        rest = self.tasks_per_iteration - self.min_tasks * len(unsolved)
        weights = [1.0 - success[self.families[i]] for i in unsolved]
        shares = _largest_remainder(weights, rest, [unsolved.index(i) for i in order if i in unsolved])
        for i, share in zip(unsolved, shares):
            counts[i] = self.min_tasks + share
        return dict(zip(self.families, counts))

    def sample(self, iteration: int) -> list[Task]:
        self.last_allocation = self.allocation(iteration)
        tasks: list[Task] = []
        for index, (family, count) in enumerate(self.last_allocation.items()):
            if count:  # fresh tasks per (seed, iteration, family), as TaskSampler's
                tasks += self.config.family_tasks(family, "train", count, self.seed * 100_003 + iteration * 101 + index)
        return tasks

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for family, success in self.success().items():
            out[f"train/family/{family}/success_rate"] = success
            out[f"train/family/{family}/env_steps"] = float(self.env_steps[family])
            out[f"train/family/{family}/tasks"] = float(self.last_allocation[family])
        out["train/families_solved"] = float(len(self.solved()))
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"success": dict(self._success),  # observed families only
                "env_steps": dict(self.env_steps), "last_allocation": dict(self.last_allocation)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()` output; families no longer in the config are dropped."""
        known = set(self.families)
        self._success = {f: float(v) for f, v in state["success"].items() if f in known}
        self.env_steps.update({f: int(v) for f, v in state.get("env_steps", {}).items() if f in known})
        self.last_allocation.update({f: int(v) for f, v in state.get("last_allocation", {}).items() if f in known})
