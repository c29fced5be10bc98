"""Fault injectors: an env that raises, hangs or returns garbage at random turns, and an engine
whose completions are replaced by malformed model output. Each fault is logged as it happens."""
from __future__ import annotations

import itertools
import json
import random
import threading
import time
from dataclasses import dataclass, field

from agentrl.chat import ChatFormat
from agentrl.engines.base import Completion, Engine, SamplingParams, WeightUpdate
from agentrl.env import Env, EnvConfig, Step, Task
from agentrl_sokoban import SokobanConfig

ENV_FAULTS = ("raise", "hang", "garbage")
_instances = itertools.count()
_log_lock = threading.Lock()


def log_fault(path: str, **record) -> None:
    if path:
        with _log_lock, open(path, "a") as f:
            f.write(json.dumps(record) + "\n")


def read_faults(path) -> list[dict]:
    try:
        return [json.loads(line) for line in open(path) if line.strip()]
    except FileNotFoundError:
        return []


# the garbage an env can hand back instead of a Step (or a str observation at reset)
GARBAGE_STEPS = {
    "bytes observation": lambda obs: Step(b"\x89PNG\r\n\x1a\n\x00\xff"),
    "nan reward": lambda obs: Step(obs, reward=float("nan")),
    "done is a string": lambda obs: Step(obs, done="maybe"),
    "None instead of a Step": lambda obs: None,
    "a str instead of a Step": lambda obs: obs,
}


@dataclass
class FaultyEnvConfig(EnvConfig):
    """`inner`'s env, but a share `rate` of episodes meets one fault at a random turn (turn 0 is
    the reset): `kinds` among raise (an exception), hang (sleeps `hang_s`, past the rollout's step
    timeout) and garbage (one of GARBAGE_STEPS). Faults are appended to the JSONL file `log`."""

    inner: SokobanConfig = field(default_factory=SokobanConfig)
    rate: float = 0.3
    kinds: list[str] = field(default_factory=lambda: list(ENV_FAULTS))
    max_turn: int = 4
    hang_s: float = 2.0
    seed: int = 0
    log: str = ""

    def make(self) -> Env:
        return FaultyEnv(self)

    def tasks(self, split: str, n: int, seed: int) -> list[Task]:
        return self.inner.tasks(split, n, seed)


class FaultyEnv(Env):
    def __init__(self, cfg: FaultyEnvConfig) -> None:
        self.cfg, self.env = cfg, cfg.inner.make()
        self.system_prompt = self.env.system_prompt
        self.rng = random.Random(f"{cfg.seed}:{next(_instances)}")
        self.turn, self.fault_turn, self.kind = 0, -1, ""

    def reset(self, task: Task) -> str:
        self.turn, self.task = 0, task
        if self.rng.random() < self.cfg.rate:
            self.fault_turn, self.kind = self.rng.randint(0, self.cfg.max_turn), self.rng.choice(self.cfg.kinds)
        return self._maybe_fault(lambda: self.env.reset(task))

    def step(self, action: str) -> Step:
        self.turn += 1
        return self._maybe_fault(lambda: self.env.step(action))

    def _maybe_fault(self, call):
        if self.turn != self.fault_turn:
            return call()
        kind = self.kind
        if kind == "garbage":
            kind = self.rng.choice(sorted(GARBAGE_STEPS))
        log_fault(self.cfg.log, task=self.task.id, turn=self.turn, kind=self.kind, detail=kind)
        if kind == "raise":
            raise RuntimeError(f"injected crash at turn {self.turn}")
        if kind == "hang":
            time.sleep(self.cfg.hang_s)
            return call()
        result = call()
        if self.turn == 0:  # reset: garbage instead of the first observation
            return result.encode()
        return GARBAGE_STEPS[kind](result.observation)

    def close(self) -> None:
        self.env.close()


class MalformedOutputEngine(Engine):
    """`inner`, but a share `rate` of completions is replaced by malformed model output of the same
    request budget: random token ids (special tokens included), chat markup the model should never
    emit mid-turn, or a completion cut at the token limit with no end of turn."""

    KINDS = ("random token ids", "chat markup", "no end of turn")

    def __init__(self, inner: Engine, rate: float, seed: int, log: str = "") -> None:
        self.inner, self.rate, self.log = inner, rate, log
        self.tokenizer, self.max_model_len = inner.tokenizer, inner.max_model_len
        self.rng = random.Random(seed)

    async def generate(self, prompt_ids: list[int], sampling: SamplingParams) -> Completion:
        completion = await self.inner.generate(prompt_ids, sampling)
        if self.rng.random() >= self.rate:
            return completion
        kind, n = self.rng.choice(self.KINDS), sampling.max_new_tokens
        vocab = len(self.tokenizer)
        if kind == "random token ids":
            ids = [self.rng.randrange(vocab) for _ in range(n)]
        elif kind == "chat markup":  # the model writes the next user turn itself, template markup and all
            ids = ChatFormat(self.tokenizer).first_prompt("left", "system")[-n:]
        else:
            ids = [self.rng.randrange(vocab)] * n
        log_fault(self.log, kind=kind, ids=ids)
        # a logprob per token, as a real engine reports (the learner recomputes its own)
        return Completion(ids, [-1.0] * len(ids), "length")

    def sync(self, update: WeightUpdate) -> None:
        self.inner.sync(update)

    def close(self) -> None:
        self.inner.close()
