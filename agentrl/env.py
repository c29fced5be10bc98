"""The environment protocol: text in, text out.

An *observation* is the text the agent sees as the next user message (a rendered
Sokoban grid, an ALFWorld room description, the output of code the agent ran).
An *action* is the text the policy generated in one assistant turn, decoded
(without the end-of-turn token). Environments parse the action themselves and
answer an unparseable one with an observation that says why (not an exception).

Environments may be slow, blocking, or in another process: the rollout calls
them from worker threads with a timeout per call, so they need not be async.
Exceptions raised by `reset`/`step` mark the episode failed; the run goes on.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Task:
    """One problem instance: a stable id plus whatever the environment needs to build it."""

    id: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Step:
    """What one action produced.

    `info` conventions the framework reads: `success` (bool, on the final step),
    `invalid_action` (bool). Anything else is kept in the episode record.
    """

    observation: str
    reward: float = 0.0
    done: bool = False
    info: dict[str, Any] = field(default_factory=dict)


class Env(abc.ABC):
    """One episode at a time; `reset` may be called again to start a new episode."""

    #: Optional system prompt placed before the first observation.
    system_prompt: str | None = None

    @abc.abstractmethod
    def reset(self, task: Task) -> str:
        """Start an episode on `task`; return the first observation."""

    @abc.abstractmethod
    def step(self, action: str) -> Step:
        """Apply one action (the policy's decoded turn text)."""

    def close(self) -> None:
        """Release resources (processes, servers, files). Safe to call twice."""

    # --- optional: search from real states (ReSim trees) ---------------------------------
    def snapshot(self) -> Any:
        """The episode's current state, to come back to with `restore` (copied or replayable)."""
        raise NotImplementedError(f"{type(self).__name__} cannot snapshot its state")

    def restore(self, snapshot: Any) -> None:
        """Put the episode back in the state `snapshot` recorded."""
        raise NotImplementedError(f"{type(self).__name__} cannot restore a snapshot")

    def candidate_actions(self) -> list[str]:
        """Actions worth trying from the current state (all moves, admissible commands), for search."""
        raise NotImplementedError(f"{type(self).__name__} does not list candidate actions")

    def state_value(self) -> float | None:
        """An estimate in [0, 1] of how good the current state is (e.g. from a solver), or None."""
        return None


@dataclass
class EnvConfig:
    """Base class of every environment's config dataclass.

    An environment package subclasses this with its own fields (all overridable
    as `--env.<field>`) and registers the subclass under the entry-point group
    `agentrl.environments`.
    """

    def make(self) -> Env:
        raise NotImplementedError

    def tasks(self, split: str, n: int, seed: int) -> list[Task]:
        """`n` tasks of `split` ("train" or "test"), reproducible from `seed`.
        Train and test tasks never overlap."""
        raise NotImplementedError

    def extra_texts(self) -> list[str]:
        """Texts the env can emit that expert play never shows (e.g. feedback on a failed
        move), so a locally built tokenizer learns them too."""
        return []

    def expert_actions(self, task: Task) -> list[str] | None:
        """An expert's action texts for `task` (for SFT warm starts), or None."""
        return None

    def concurrency_limit(self) -> int | None:
        """Most episodes that may run at once (e.g. one per env server), or None for no limit."""
        return None

    def metrics(self, episodes: list) -> dict[str, float]:
        """Env-specific evaluation metrics over a set of episodes (e.g. AppWorld's TGC/SGC)."""
        return {}


def last_tagged(text: str, tag: str = "action") -> str | None:
    """What the last complete `<tag>...</tag>` in `text` holds (case-insensitive), or None.

    Linear in len(text): a regex like `<action>(.*?)</action>` rescans the rest of the text from
    every opening tag, which took ~20 s on a 100k-character output of repeated `<action>`.
    """
    lowered = text.lower()
    close = lowered.rfind(f"</{tag}>")
    if close < 0:
        return None
    open_ = lowered.rfind(f"<{tag}>", 0, close)
    return None if open_ < 0 else text[open_ + len(tag) + 2: close]


def environment_registry() -> dict[str, type[EnvConfig]]:
    """Installed environments, by name, from the `agentrl.environments` entry points."""
    from importlib.metadata import entry_points

    return {ep.name: ep.load() for ep in entry_points(group="agentrl.environments")}


def env_config_class(name: str) -> type[EnvConfig]:
    registry = environment_registry()
    if name not in registry:
        known = ", ".join(sorted(registry)) or "none installed"
        raise ValueError(f"unknown environment {name!r} (installed: {known})")
    return registry[name]
