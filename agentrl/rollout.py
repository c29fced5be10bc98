"""Multi-turn rollouts: many episodes at once on one event loop.

Each episode alternates engine.generate (async, batched by the engine with every other
live episode) and env.step (run in a worker thread with a timeout, since environments
block). The context is kept as token ids: the engine's completion ids are appended as
they are and each observation is appended as the chat template's next user turn.
A crash, a timeout or a dead server marks that episode failed with the reason; the
other episodes go on.
"""
from __future__ import annotations

import asyncio
import math
import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass

from agentrl.chat import ChatFormat
from agentrl.engines.base import Engine, SamplingParams
from agentrl.env import EnvConfig, Step, Task
from agentrl.episode import Episode, Turn


@dataclass
class RolloutConfig:
    max_turns: int = 40
    max_new_tokens: int = 256  # per turn
    temperature: float = 1.0
    top_p: float = 1.0
    history: int | None = None  # None: whole conversation in context; h: only the last h turns (0 = current observation)
    step_timeout: float = 120.0  # seconds for one env.reset/env.step
    max_concurrent_episodes: int = 512

    def validate(self) -> None:
        if self.max_turns < 1:
            raise ValueError("max_turns must be >= 1")
        if self.history is not None and self.history < 0:
            raise ValueError("history must be >= 0 or None")
        if self.step_timeout <= 0:
            raise ValueError("step_timeout must be > 0")
        SamplingParams(self.temperature, self.top_p, self.max_new_tokens).validate()


def request_seed(seed: int, episode_index: int, turn: int) -> int:
    """A stable per-request seed, so a rerun (or a resumed run) samples the same tokens."""
    return (seed * 1_000_003 + episode_index * 10_007 + turn) % (2**63)


class EnvProtocolError(TypeError):
    """An env returned something that is not a Step (a str observation, a finite reward, a bool done)."""


def _checked(step) -> Step:
    """`step` if it keeps the env protocol; otherwise the episode fails with what was wrong, instead
    of a NaN reward reaching the advantages or a non-text observation reaching the tokenizer."""
    if not isinstance(step, Step):
        raise EnvProtocolError(f"env.step returned {type(step).__name__}, not a Step")
    if not isinstance(step.observation, str):
        raise EnvProtocolError(f"env.step returned a {type(step.observation).__name__} observation, not str")
    if isinstance(step.reward, bool) or not isinstance(step.reward, numbers.Real) or not math.isfinite(step.reward):
        raise EnvProtocolError(f"env.step returned reward {step.reward!r}, not a finite number")
    if isinstance(step.done, str) or step.done not in (True, False):  # bool, numpy's bool_, 0/1
        raise EnvProtocolError(f"env.step returned done={step.done!r}, not a bool")
    if not isinstance(step.info, dict):
        raise EnvProtocolError(f"env.step returned info of type {type(step.info).__name__}, not dict")
    return step


async def _call(fn, *args, timeout: float):
    return await asyncio.wait_for(asyncio.to_thread(fn, *args), timeout)


async def run_episode(
    engine: Engine, env_config: EnvConfig, task: Task, cfg: RolloutConfig, chat: ChatFormat,
    *, group_id: str, episode_index: int, seed: int, refine=None,
) -> Episode:
    """One episode. `refine` (e.g. `sim_rollout.SimRefiner`) may replace each sampled completion
    before the env sees it; what it returns is recorded in the turn's info."""
    ep = Episode(task_id=task.id, group_id=group_id, episode_id=f"{group_id}/{episode_index}",
                 family=str(task.data.get("family", "")))
    env = None
    try:
        env = await _call(env_config.make, timeout=cfg.step_timeout)
        observation = await _call(env.reset, task, timeout=cfg.step_timeout)
        if not isinstance(observation, str):
            raise EnvProtocolError(f"env.reset returned a {type(observation).__name__} observation, not str")
        ep.initial_observation = observation
        system = env.system_prompt
        # per turn: (first-prompt ids for its observation, completion ids, ids closing it + next observation)
        segments: list[tuple[list[int], list[int], list[int]]] = []
        prompt = chat.first_prompt(observation, system)
        for t in range(cfg.max_turns):
            room = engine.max_model_len - len(prompt)
            if room < 1:
                ep.finish_reason = "context_length"
                break
            sampling = SamplingParams(
                cfg.temperature, cfg.top_p, min(cfg.max_new_tokens, room), seed=request_seed(seed, episode_index, t),
                route=ep.family,
            )
            t0 = time.perf_counter()
            completion = await engine.generate(prompt, sampling)
            refined = {}
            if refine is not None:
                completion, refined = await refine(engine, env, chat, prompt, completion, sampling, cfg.step_timeout)
            gen_time = time.perf_counter() - t0
            action = engine.tokenizer.decode(completion.token_ids, skip_special_tokens=True)
            t0 = time.perf_counter()
            step = _checked(await _call(env.step, action, timeout=cfg.step_timeout))
            turn = Turn(
                prompt_ids=prompt, completion_ids=completion.token_ids, logprobs=completion.logprobs,
                action=action, observation=step.observation, reward=float(step.reward),
                duration=time.perf_counter() - t0, generation_time=gen_time,
                finish_reason=completion.finish_reason, info={**step.info, **refined},
            )
            ep.turns.append(turn)
            if step.done:
                ep.finish_reason = "done"
                break
            ended = completion.token_ids[-1:] == [chat.eos_id]
            # only what the history mode needs: the next user turn, or a fresh first prompt
            continuation = chat.next_turn(step.observation, completion_ended=ended) if cfg.history != 0 else []
            fresh = chat.first_prompt(step.observation, system) if cfg.history is not None else []
            segments.append((fresh, completion.token_ids, continuation))
            prompt = _context(prompt, segments, cfg.history, chat, observation, system)
        else:
            ep.finish_reason = "max_turns"
    except Exception as exc:  # the episode failed; the run goes on
        ep.failed, ep.finish_reason = True, "failed"
        reason = "timeout" if isinstance(exc, (asyncio.TimeoutError, TimeoutError)) else type(exc).__name__
        ep.failure_reason = f"{reason}: {exc}".strip().rstrip(":") or reason
    finally:
        if env is not None:
            try:
                await _call(env.close, timeout=cfg.step_timeout)
            except Exception:
                pass
    ep.reward = sum(t.reward for t in ep.turns)
    ep.success = bool(ep.turns and ep.turns[-1].info.get("success", False)) and not ep.failed
    return ep


def _context(prompt, segments, history, chat, first_observation, system) -> list[int]:
    """The next prompt: the whole conversation, or a window of the last `history` turns."""
    last_first_prompt, completion, continuation = segments[-1]
    if history is None:
        return prompt + completion + continuation
    if history == 0:
        return last_first_prompt
    window = segments[-history:]
    start = len(segments) - len(window)
    # the window opens on the observation that preceded its first turn
    head = chat.first_prompt(first_observation, system) if start == 0 else segments[start - 1][0]
    ids = list(head)
    for _, comp, cont in window:
        ids += comp + cont
    return ids


async def collect(
    engine: Engine, env_config: EnvConfig, tasks: list[Task], k: int, cfg: RolloutConfig,
    *, seed: int, group_prefix: str = "", refine=None, refined_per_task: int = 0,
    on_episode: Callable[[Episode], None] | None = None,
) -> list[Episode]:
    """`k` episodes per task, all concurrently (bounded by `max_concurrent_episodes`); the first
    `refined_per_task` of each task's episodes run with the `refine` hook (SimRollout).
    `on_episode` is called with each episode as it finishes (a progress bar)."""
    chat = ChatFormat(engine.tokenizer)
    limit = asyncio.Semaphore(min(cfg.max_concurrent_episodes, env_config.concurrency_limit() or cfg.max_concurrent_episodes))

    async def one(task: Task, group: int, index: int, hook) -> Episode:
        async with limit:
            episode = await run_episode(
                engine, env_config, task, cfg, chat,
                group_id=f"{group_prefix}{group}:{task.id}", episode_index=index, seed=seed, refine=hook,
            )
        if on_episode is not None:
            on_episode(episode)
        return episode

    jobs = [one(task, n, n * k + i, refine if i < refined_per_task else None)
            for n, task in enumerate(tasks) for i in range(k)]
    return list(await asyncio.gather(*jobs))


def run_sync(engine: Engine, coroutine):
    """Run a coroutine that uses `engine` from synchronous code. Engines with their own event
    loop (vLLM) run it there, so requests need no hop between threads."""
    background = getattr(engine, "background", None)
    if background is not None:
        return background.run(coroutine)
    return asyncio.run(coroutine)


def collect_sync(engine: Engine, *args, **kwargs) -> list[Episode]:
    """`collect` from synchronous code (the trainer, the CLI)."""
    return run_sync(engine, collect(engine, *args, **kwargs))
