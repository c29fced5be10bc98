"""Supervised warm start on an environment's expert demonstrations.

Demonstrations are played through the real rollout (a scripted engine feeding the
expert's actions), so their token layout is exactly what the policy will see in RL.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agentrl.algorithms.base import Sample
from agentrl.chat import ChatFormat
from agentrl.engines.scripted import ScriptedEngine
from agentrl.env import EnvConfig, Task
from agentrl.episode import Episode, Turn
from agentrl.learner import Learner, LearnerConfig, LoraSettings
from agentrl.rollout import RolloutConfig, run_episode


@dataclass
class SFTConfig:
    tasks: int = 1000  # demonstrations (train tasks solved by the env's expert)
    steps: int = 800  # 0 = no SFT
    batch_size: int = 64
    lr: float = 2e-3
    warmup_steps: int = 50
    max_grad_norm: float = 1.0
    seed: int = 0
    lora: LoraSettings = field(default_factory=lambda: LoraSettings(enabled=False))
    demonstrations: str = "expert"  # expert: the env's expert actions; resim: ReSim traces from search trees
    resim_breadth: int = 4  # ReSim: candidate actions per state
    resim_depth: int = 2  # ReSim: tree depth
    # ReSim: share of states that also give a refinement example (wrong simulations -> real outcomes
    # -> the correct trace; see sim_rollout.refine_demonstration), for Dyna-GRPO's SimRollout
    resim_refine: float = 0.0

    def validate(self) -> None:
        if self.tasks < 1 or self.steps < 0 or self.batch_size < 1:
            raise ValueError("tasks and batch_size must be >= 1, steps >= 0")
        if self.demonstrations not in ("expert", "resim"):
            raise ValueError(f"demonstrations must be expert or resim (got {self.demonstrations!r})")
        if self.resim_breadth < 1 or self.resim_depth < 1:
            raise ValueError("resim_breadth and resim_depth must be >= 1")
        if not 0 <= self.resim_refine <= 1:
            raise ValueError(f"resim_refine must be in [0, 1] (got {self.resim_refine})")


def demonstration_episodes(
    env_config: EnvConfig, tasks: list[Task], tokenizer, rollout: RolloutConfig, max_model_len: int,
    actions_for: Callable[[Task], list[str] | None] | None = None,
) -> list[Episode]:
    """The expert's successful episodes on `tasks`, tokenized as rollouts are. `actions_for` gives
    a task's demonstration actions (default: the env's expert; e.g. `resim.resim_actions`)."""
    chat = ChatFormat(tokenizer)
    actions_for = actions_for or env_config.expert_actions

    async def play(i: int, task: Task, limit: asyncio.Semaphore) -> Episode | None:
        actions = actions_for(task)
        if actions is None:
            return None
        engine = ScriptedEngine(tokenizer, actions, max_model_len)
        async with limit:
            return await run_episode(engine, env_config, task, rollout, chat, group_id=f"demo/{i}", episode_index=i,
                                     seed=0)

    async def play_all():
        limit = asyncio.Semaphore(env_config.concurrency_limit() or max(len(tasks), 1))
        return await asyncio.gather(*(play(i, t, limit) for i, t in enumerate(tasks)))

    return [e for e in asyncio.run(play_all()) if e is not None and e.success]


def train_sft(
    model: str, env_config: EnvConfig, rollout: RolloutConfig, cfg: SFTConfig, output_dir: str | Path,
) -> Path:
    """SFT `model` on expert demonstrations and save the result as an HF checkpoint."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    learner = Learner(model, LearnerConfig(
        lr=cfg.lr, weight_decay=0.0, max_grad_norm=cfg.max_grad_norm, lr_schedule="cosine",
        warmup_steps=cfg.warmup_steps, total_steps=cfg.steps, lora=cfg.lora,
    ), seed=cfg.seed)
    max_len = learner.accelerator.unwrap_model(learner.model).config.max_position_embeddings
    tasks = env_config.tasks("train", cfg.tasks, cfg.seed)
    source = None
    if cfg.demonstrations == "resim":
        from agentrl.resim import resim_actions

        source = resim_actions(env_config, cfg.resim_breadth, cfg.resim_depth, rollout.max_turns)
    demos = demonstration_episodes(env_config, tasks, tokenizer, rollout, max_len, source)
    samples = [Sample(s.token_ids, s.loss_mask, s.logprobs, 0.0, i) for i, e in enumerate(demos) for s in e.sequences()]
    if not samples:
        raise ValueError("no demonstrations: the environment's expert solved none of the tasks")
    rng = np.random.default_rng(cfg.seed)
    if cfg.demonstrations == "resim" and cfg.resim_refine > 0:
        samples += refinement_samples(demos, ChatFormat(tokenizer), cfg.resim_refine, rng)
    print(f"[sft] {len(demos)} demonstrations, {len(samples)} sequences, {cfg.steps} steps", flush=True)
    t0 = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        picked = rng.choice(len(samples), size=min(cfg.batch_size, len(samples)), replace=False)
        stats = learner.sft_step([samples[i] for i in picked])
        if step % max(cfg.steps // 8, 1) == 0 or step == cfg.steps:
            print(f"[sft] step {step}/{cfg.steps}  loss={stats['sft/loss']:.4f}  {time.perf_counter() - t0:.0f}s", flush=True)
    return learner.save_pretrained(output_dir, tokenizer)


def refinement_samples(demos: list[Episode], chat: ChatFormat, share: float, rng: np.random.Generator) -> list[Sample]:
    """(s_refine -> correct trace) samples for a `share` of the demonstrations' turns."""
    from agentrl.sim_rollout import refine_demonstration

    samples = []
    for i, episode in enumerate(demos):
        for turn in episode.turns:
            example = refine_demonstration(chat, turn.prompt_ids, turn.completion_ids) if rng.random() < share else None
            if example is not None:
                prompt, trace = example
                seq = Turn(prompt, trace, [0.0] * len(trace)).sequence()
                samples.append(Sample(seq.token_ids, seq.loss_mask, seq.logprobs, 0.0, i))
    return samples
