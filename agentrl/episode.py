"""The token-level record of one rollout, and its storage as a `datasets.Dataset`.

Each turn keeps the exact token ids the engine was given (`prompt_ids`) and the ids
and behaviour logprobs it returned (`completion_ids`, `logprobs`). When every turn's
prompt extends the previous turn's prompt + completion (full-history rollouts), the
episode is one training sequence; with a history window it is one sequence per
turn. Either way the learner trains on these ids as they are: nothing is decoded
and re-tokenized.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Turn:
    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]  # behaviour logprob of each completion token
    action: str = ""  # decoded completion, as the env saw it
    observation: str = ""  # what the env answered
    reward: float = 0.0
    duration: float = 0.0  # seconds the env spent executing the action
    generation_time: float = 0.0
    finish_reason: str = "stop"
    info: dict[str, Any] = field(default_factory=dict)

    def sequence(self) -> "Sequence":
        """This turn alone as a training sequence: its prompt (masked) then its completion."""
        n = len(self.prompt_ids)
        return Sequence(self.prompt_ids + self.completion_ids, [0] * n + [1] * len(self.completion_ids),
                        [0.0] * n + list(self.logprobs))


@dataclass
class Sequence:
    """One training sequence: ids, loss mask (1 = policy token), behaviour logprobs."""

    token_ids: list[int]
    loss_mask: list[int]
    logprobs: list[float]


@dataclass
class Episode:
    task_id: str
    group_id: str
    episode_id: str
    turns: list[Turn] = field(default_factory=list)
    reward: float = 0.0  # the episode's final reward (sum of turn rewards unless an env says otherwise)
    success: bool = False
    failed: bool = False  # env crash, timeout, dead server: not the policy's fault
    failure_reason: str = ""
    finish_reason: str = ""  # done | max_turns | context_length | failed
    advantage: float = 0.0  # filled by the algorithm
    initial_observation: str = ""
    family: str = ""  # the task family (multi-task runs route it to its own LoRA expert)

    @property
    def num_turns(self) -> int:
        return len(self.turns)

    @property
    def invalid_actions(self) -> int:
        return sum(bool(t.info.get("invalid_action")) for t in self.turns)

    @property
    def revisits(self) -> bool:
        """Whether an action led back to an observation seen earlier in the episode. A policy
        that sees only the current observation (greedy, history 0) then cycles forever."""
        seen = {self.initial_observation}
        for turn in self.turns:
            if turn.observation in seen:
                return True
            seen.add(turn.observation)
        return False

    @property
    def num_policy_tokens(self) -> int:
        return sum(len(t.completion_ids) for t in self.turns)

    def sequences(self) -> list[Sequence]:
        """Merge turns into as few sequences as the ids allow (prefix-checked)."""
        seqs: list[Sequence] = []
        for turn in self.turns:
            if seqs and _extends(turn.prompt_ids, seqs[-1].token_ids):
                seq = seqs[-1]
                new = turn.prompt_ids[len(seq.token_ids):]
                seq.token_ids += new
                seq.loss_mask += [0] * len(new)
                seq.logprobs += [0.0] * len(new)
                seq.token_ids += turn.completion_ids
                seq.loss_mask += [1] * len(turn.completion_ids)
                seq.logprobs += list(turn.logprobs)
            else:
                seqs.append(turn.sequence())
        return seqs

    def to_row(self) -> dict[str, Any]:
        row = {k: v for k, v in asdict(self).items() if k != "turns"}
        row["turns"] = json.dumps([asdict(t) for t in self.turns])
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Episode":
        row = dict(row)
        turns = [Turn(**t) for t in json.loads(row.pop("turns"))]
        return cls(turns=turns, **row)


def _extends(ids: list[int], prefix: list[int]) -> bool:
    return len(ids) >= len(prefix) and ids[: len(prefix)] == prefix


def episodes_to_dataset(episodes: list[Episode]):
    """A `datasets.Dataset` with one row per episode (turns as a JSON column)."""
    from datasets import Dataset

    return Dataset.from_list([e.to_row() for e in episodes])


def episodes_from_dataset(dataset) -> list[Episode]:
    return [Episode.from_row(r) for r in dataset]


def save_episodes(episodes: list[Episode], path: str) -> None:
    """Write episodes as JSONL (`.jsonl`) or parquet (anything else)."""
    ds = episodes_to_dataset(episodes)
    if str(path).endswith(".jsonl"):
        ds.to_json(path, lines=True)
    else:
        ds.to_parquet(path)


def load_episodes(path: str) -> list[Episode]:
    from datasets import Dataset

    ds = Dataset.from_json(path) if str(path).endswith(".jsonl") else Dataset.from_parquet(path)
    return episodes_from_dataset(ds)
