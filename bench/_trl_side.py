"""TRL's side of bench/vs_trl.py: a GRPOTrainer subclass that times its phases from outside,
Sokoban as a TRL reward function (single turn) and as a `rollout_func` (multi-turn); and the
Clock and Baton (step-by-step turn taking) both sides are timed with.

Phases are measured by wrapping GRPOTrainer's own methods (trl 1.16.0):
`_generate` (tokenize + `model.generate` + decode; the rollout_func when one is given),
`_calculate_rewards`, `_generate_and_score_completions` (generate + rewards + TRL's batch
bookkeeping) inside `training_step`, and the optimizer step between `training_step` and the
`on_optimizer_step` callback. With use_vllm=False the policy generates itself: no weight sync.
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

from transformers import TrainerCallback
from trl import GRPOTrainer

from agentrl.chat import ChatFormat
from agentrl.env import EnvConfig, Task


class Clock:
    """Seconds per phase, samples, generated tokens and active seconds (time holding the Baton)
    since the last `reset`."""

    def __init__(self) -> None:
        self.reset()
        self.turn_start = time.perf_counter()

    def reset(self) -> None:
        self.phases: dict[str, float] = defaultdict(float)
        self.samples = self.tokens = 0
        self.active = 0.0

    def start_turn(self) -> None:
        self.turn_start = time.perf_counter()

    def stop_turn(self) -> None:
        self.active += time.perf_counter() - self.turn_start

    @contextmanager
    def phase(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] += time.perf_counter() - t0


class Baton:
    """Parties take turns, one optimizer step each, in a fixed round: only one side computes at
    a time, and load from other processes on a shared machine falls on both sides alike."""

    def __init__(self, parties: int) -> None:
        self._turn = [threading.Semaphore(0) for _ in range(parties)]
        self._done = [False] * parties

    def give(self, party: int) -> None:
        self._turn[party].release()

    def wait(self, me: int) -> None:
        self._turn[me].acquire()

    def _next(self, me: int) -> int | None:
        n = len(self._turn)
        return next((j % n for j in range(me + 1, me + n) if not self._done[j % n]), None)

    def pass_turn(self, me: int) -> None:
        """Hand the turn to the next party still running, then wait for it to come back."""
        nxt = self._next(me)
        if nxt is not None:
            self._turn[nxt].release()
            self._turn[me].acquire()

    def finish(self, me: int) -> None:
        """`me` is done (idempotent): hand the turn on for good."""
        if not self._done[me]:
            self._done[me] = True
            nxt = self._next(me)
            if nxt is not None:
                self._turn[nxt].release()


class TimedGRPOTrainer(GRPOTrainer):
    clock: Clock  # set right after construction

    def _generate(self, prompts: list):
        env_before, t0 = self.clock.phases["env"], time.perf_counter()
        out = super()._generate(prompts)
        env_inside = self.clock.phases["env"] - env_before  # env steps run inside a rollout_func
        self.clock.phases["generate"] += time.perf_counter() - t0 - env_inside
        completion_ids, env_mask = out[1], out[2]
        self.clock.samples += len(completion_ids)
        self.clock.tokens += sum(map(sum, env_mask)) if env_mask is not None else sum(map(len, completion_ids))
        return out

    def _calculate_rewards(self, *args, **kwargs):
        with self.clock.phase("env"):
            return super()._calculate_rewards(*args, **kwargs)

    def _generate_and_score_completions(self, inputs):
        with self.clock.phase("score"):
            return super()._generate_and_score_completions(inputs)

    def training_step(self, model, inputs, num_items_in_batch):
        with self.clock.phase("train_step"):
            out = super().training_step(model, inputs, num_items_in_batch)
        self.train_step_end = time.perf_counter()
        return out


class StepTimer(TrainerCallback):
    """Times the optimizer step, restarts the clock after `warmup` optimizer steps and hands the
    Baton on after every step but the last (the thread running train() finishes it)."""

    def __init__(self, trainer: TimedGRPOTrainer, warmup: int, baton: Baton, me: int) -> None:
        self.trainer, self.warmup, self.baton, self.me = trainer, warmup, baton, me

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.trainer.clock.phases["optimizer"] += time.perf_counter() - self.trainer.train_step_end

    def on_step_end(self, args, state, control, **kwargs):
        clock = self.trainer.clock
        clock.stop_turn()
        if state.global_step == self.warmup:
            clock.reset()
        if state.global_step < state.max_steps:
            self.baton.pass_turn(self.me)
        clock.start_turn()


def trl_phases(clock: Clock) -> dict[str, float]:
    """Clock totals -> the bench's phases (learner = forward/backward + grad clip + optimizer step)."""
    learner = clock.phases["train_step"] - clock.phases["score"] + clock.phases["optimizer"]
    return {"generate": clock.phases["generate"], "env/reward": clock.phases["env"], "learner": learner,
            "weight sync": 0.0}


def sokoban_reward(env_config: EnvConfig) -> Callable[..., list[float]]:
    """Single turn: reward of the completion as the one action on the level in its dataset row."""

    def sokoban(completions: list, level: list[str], optimal_length: list[int], **_: Any) -> list[float]:
        rewards = []
        for completion, text, length in zip(completions, level, optimal_length):
            env = env_config.make()
            env.reset(Task("", {"level": text, "optimal_length": length}))
            rewards.append(float(env.step(completion[-1]["content"]).reward))
            env.close()
        return rewards

    return sokoban


def rollout_reward(completions: list, episode_reward: list[float], **_: Any) -> list[float]:
    """Multi-turn: the rollout_func already played the episode; its return is the reward."""
    return list(episode_reward)


def sokoban_rollout(env_config: EnvConfig, tasks: dict[str, Task], chat: ChatFormat,
                    clock: Clock, max_turns: int) -> Callable[[list, GRPOTrainer], dict[str, Any]]:
    """A `rollout_func` playing whole Sokoban episodes, all live episodes batched per turn through
    TRL's own transformers generation (`_generate_single_turn`). The conversation is one sequence:
    prompt_ids = the first prompt, completion_ids = every action plus the env's replies in the chat
    template's user turns (env_mask 0), built with agentrl's ChatFormat so both sides see the same ids."""

    def rollout(prompts: list, trainer: GRPOTrainer) -> dict[str, Any]:
        with clock.phase("env"):
            envs = [env_config.make() for _ in prompts]
            first = [chat.first_prompt(env.reset(tasks[p[-1]["content"]]), env.system_prompt)
                     for env, p in zip(envs, prompts)]
        completions: list[list[int]] = [[] for _ in prompts]
        masks: list[list[int]] = [[] for _ in prompts]
        rewards = [0.0] * len(prompts)
        live = list(range(len(prompts)))
        for _ in range(max_turns):
            ids, _ = trainer._generate_single_turn([first[i] + completions[i] for i in live], None, {}, 1)
            still = []
            for i, new in zip(live, ids):
                completions[i] += new
                masks[i] += [1] * len(new)
                action = trainer.processing_class.decode(new, skip_special_tokens=True)
                with clock.phase("env"):
                    step = envs[i].step(action)
                rewards[i] += step.reward
                if not step.done:
                    reply = chat.next_turn(step.observation, completion_ended=new[-1:] == [chat.eos_id])
                    completions[i] += reply
                    masks[i] += [0] * len(reply)
                    still.append(i)
            live = still
            if not live:
                break
        return {"prompt_ids": first, "completion_ids": completions, "logprobs": None, "env_mask": masks,
                "episode_reward": rewards}

    return rollout


class SokobanTools:
    """Sokoban shaped for TRL's `environment_factory` (tool calls), only to probe whether it runs."""

    def reset(self, **kwargs: Any) -> str:
        return ""

    def move(self, direction: str) -> str:
        """Move the player one square.

        Args:
            direction: up, down, left or right.

        Returns:
            The grid after the move.
        """
        return ""


def environment_factory_blocker(model_dir: str, tokenizer, dataset, output_dir: str) -> str | None:
    """Why GRPOTrainer(environment_factory=...) refuses this model, or None if it accepts it."""
    from trl import GRPOConfig

    args = GRPOConfig(output_dir=output_dir, per_device_train_batch_size=2, num_generations=2, max_steps=1,
                      use_cpu=True, bf16=False, report_to="none")
    try:
        GRPOTrainer(model=model_dir, args=args, train_dataset=dataset, processing_class=tokenizer,
                    environment_factory=SokobanTools, reward_funcs=rollout_reward)
    except (ValueError, ImportError) as e:
        return str(e).splitlines()[0]
    return None
