"""`agentrl watch` and `agentrl play`: one episode, turn by turn, in the terminal.

`watch` drives a real `rollout.run_episode`, so the agent's turns are built exactly as in
training and `agentrl eval` (token ids in and out, the chat template's next user turn, the
history window). It hooks in through two thin wrappers rather than a copy of the loop:

- `PilotEngine` wraps the engine. Before each turn it waits for a key (or, when continuing,
  checks for one); on the person's turns (take-over) it returns their typed text, tokenized as
  the chat would, as the completion instead of generating, so the context, the history window
  and the env treat it exactly like an agent turn.
- `WatchedEnv` wraps the env and shows what each step produced.

Keys (watch): Enter/space/n next turn, c continue to the end (p pauses again), t take over
(type the actions; a line "a" hands back to the agent), q quit. `play` is a person alone with
the env: the same observations the agent gets, actions typed as lines, `quit` to stop.
"""
from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

from agentrl.engines.base import Completion, Engine, SamplingParams, WeightUpdate
from agentrl.env import Env, EnvConfig, Step, Task
from agentrl.episode import Episode
from agentrl.evaluation import EvalCommand, EvalConfig, eval_rollout, open_engine
from agentrl.interactive import ENTER, QUIT, Keys, Screen
from agentrl.rollout import RolloutConfig

KEYS_HELP = "[Enter/space/n] next turn  [c] continue  [t] take over  [q] quit"
RUNNING_HELP = "continuing: [p] pause  [t] take over  [q] quit"
TAKE_OVER_HELP = "you play: type an action; a line 'a' hands back to the agent, 'q' quits"


class Quit(Exception):
    """The person ended the episode (q, or the end of their input)."""


@dataclass
class PlayCommand:
    """What `agentrl play` runs: a person on one task of an environment."""

    env: EnvConfig = field(default_factory=EnvConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)  # max_turns bounds the episode
    eval: EvalConfig = field(default_factory=EvalConfig)  # split and seed pick the task, as in `agentrl eval`


@dataclass
class Controls:
    """Who plays the next turn and whether to stop before it; shared by the two wrappers."""

    pausing: bool = True
    delay: float = 0.5  # seconds between turns while continuing (time to press p)
    person: bool = False  # the person has taken over
    actor: str = "agent"  # who chose the action being executed
    person_turns: int = 0


def pick_task(env_config: EnvConfig, split: str, seed: int, index: int) -> Task:
    """Task `index` of `env_config.tasks(split, ..., seed)`: episode `index` of `agentrl eval`
    with the same seed."""
    if index < 0:
        raise ValueError(f"--task: expected an index >= 0, got {index}")
    tasks = env_config.tasks(split, index + 1, seed)
    if len(tasks) <= index:
        raise ValueError(f"--task {index}: the {split} split has only {len(tasks)} tasks")
    return tasks[index]


async def _in_thread(fn: Any) -> Any:
    """`fn()` in a daemon thread, awaited. Waiting for a key blocks, so it must not hold the event
    loop (an engine's own loop, vLLM's, keeps serving) and must not be in asyncio's default
    executor either: on Ctrl-C, asyncio.run joins that executor, and a thread still waiting for a
    key would hang the exit until the next keystroke."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(outcome: Any, failed: bool) -> None:
        if not future.done():
            (future.set_exception if failed else future.set_result)(outcome)

    def run() -> None:
        try:
            outcome, failed = fn(), False
        except BaseException as exc:  # handed to the awaiting coroutine
            outcome, failed = exc, True
        try:
            loop.call_soon_threadsafe(settle, outcome, failed)
        except RuntimeError:  # the loop is gone (interrupted): nobody waits any more
            pass

    threading.Thread(target=run, daemon=True, name="agentrl-keys").start()
    return await future


class PilotEngine(Engine):
    """The serving engine with a person at the controls (see the module docstring)."""

    def __init__(self, engine: Engine, keys: Keys, screen: Screen, controls: Controls,
                 show_prompt: bool = False) -> None:
        from agentrl.chat import ChatFormat

        self.inner = engine
        self.tokenizer = engine.tokenizer
        self.max_model_len = engine.max_model_len
        self.chat = ChatFormat(engine.tokenizer)  # the same encoding run_episode uses for observations
        self.keys, self.screen, self.controls, self.show_prompt = keys, screen, controls, show_prompt

    def __getattr__(self, name: str) -> Any:  # e.g. `background`, which run_sync looks for
        return getattr(self.inner, name)

    async def generate(self, prompt_ids: list[int], sampling: SamplingParams) -> Completion:
        await _in_thread(self._before_turn)
        if self.controls.person:
            text = await _in_thread(self._person_action)
            if text is not None:
                ids = self.chat.encode(text) + [self.chat.eos_id]  # a finished assistant turn
                self.controls.actor = "you"
                self.controls.person_turns += 1
                return Completion(ids, [0.0] * len(ids), "stop")
        if self.show_prompt:
            self.screen.prompt_ids(self.tokenizer.decode(prompt_ids, skip_special_tokens=False))
        self.controls.actor = "agent"
        return await self.inner.generate(prompt_ids, sampling)

    def _before_turn(self) -> None:
        c = self.controls
        if c.person:
            return
        if not c.pausing:
            key = self.keys.poll_key(c.delay)
            if key is None or key not in ("p", "t", QUIT):
                return
            if key == "p":
                c.pausing = True
            else:
                return self._apply(key)
        while True:
            key = self.keys.read_key(f"{KEYS_HELP} > ")
            if key in (ENTER, " ", "n", "c", "t", QUIT):
                return self._apply(key)
            self.screen.note(f"unknown key {key!r}")

    def _apply(self, key: str) -> None:
        c = self.controls
        if key == QUIT:
            raise Quit("quit")
        if key == "c":
            c.pausing = False
            self.screen.note(RUNNING_HELP)
        elif key == "t":
            c.person = True
            self.screen.note(TAKE_OVER_HELP)

    def _person_action(self) -> str | None:
        """The person's next action, or None when they hand back to the agent."""
        while True:
            line = self.keys.read_line("you> ")
            if line is None or line.strip() == QUIT:
                raise Quit("quit")
            if line.strip() == "a":
                self.controls.person = False
                self.screen.note("the agent plays again")
                return None
            if line.strip():
                return line
            self.screen.note(TAKE_OVER_HELP)

    def sync(self, update: WeightUpdate) -> None:
        self.inner.sync(update)

    def close(self) -> None:
        self.inner.close()


class WatchedEnv(Env):
    """An env that shows every reset and step on the screen (see the module docstring)."""

    def __init__(self, inner: Env, screen: Screen, controls: Controls) -> None:
        self.inner, self.screen, self.controls = inner, screen, controls
        self.turn, self.total = 0, 0.0

    @property
    def system_prompt(self) -> str | None:  # type: ignore[override]
        return self.inner.system_prompt

    def reset(self, task: Task) -> str:
        observation = self.inner.reset(task)
        self.turn, self.total = 0, 0.0
        self.screen.task(task.id, self.inner.system_prompt)
        self.screen.observation(observation, 0)
        return observation

    def step(self, action: str) -> Step:
        step = self.inner.step(action)
        self.turn += 1
        self.total += float(step.reward)
        self.screen.action(self.controls.actor, action)
        self.screen.step(self.turn, float(step.reward), self.total, step.done, step.info)
        self.screen.observation(step.observation, self.turn)
        return step

    def close(self) -> None:
        self.inner.close()

    # search support passes through (a refine hook may snapshot the real env)
    def snapshot(self) -> Any:
        return self.inner.snapshot()

    def restore(self, snapshot: Any) -> None:
        self.inner.restore(snapshot)

    def candidate_actions(self) -> list[str]:
        return self.inner.candidate_actions()

    def state_value(self) -> float | None:
        return self.inner.state_value()


class _Watched(EnvConfig):
    """`env_config` whose envs are `WatchedEnv`s (run_episode only calls `make`)."""

    def __init__(self, inner: EnvConfig, screen: Screen, controls: Controls) -> None:
        self.inner, self.screen, self.controls = inner, screen, controls

    def make(self) -> Env:
        return WatchedEnv(self.inner.make(), self.screen, self.controls)


def watch(cfg: EvalCommand, task_index: int = 0, *, pausing: bool = True, delay: float = 0.5,
          show_prompt: bool = False, keys: Keys | None = None, screen: Screen | None = None) -> Episode:
    """Play task `task_index` (of `cfg.eval`'s split and seed) with `cfg.model`, shown turn by turn.
    Request seeds and sampling are `agentrl eval`'s for that episode, so it replays the same one."""
    from agentrl.chat import ChatFormat
    from agentrl.rollout import run_episode, run_sync

    keys, screen = keys or Keys(), screen or Screen()
    task = pick_task(cfg.env, cfg.eval.split, cfg.eval.seed, task_index)
    controls = Controls(pausing=pausing, delay=delay)
    with keys.session():  # from the start: keys pressed while the model loads wait, unechoed
        engine = open_engine(cfg.model, cfg.engine)
        try:
            pilot = PilotEngine(engine, keys, screen, controls, show_prompt)
            if pausing:
                screen.note(f"keys: {KEYS_HELP}")
            # run_episode catches the episode's exceptions (a Quit too) and records them as its failure
            episode = run_sync(engine, run_episode(
                pilot, _Watched(cfg.env, screen, controls), task, eval_rollout(cfg.rollout, cfg.eval),
                ChatFormat(engine.tokenizer), group_id=f"eval/{task_index}:{task.id}", episode_index=task_index,
                seed=cfg.eval.seed,
            ))
        finally:
            engine.close()
    ending = "quit" if episode.failure_reason.startswith(Quit.__name__) else episode.finish_reason
    if episode.failed and ending != "quit":
        screen.note(f"the episode failed: {episode.failure_reason}")
    screen.summary(episode.num_turns, episode.reward, episode.success, ending, controls.person_turns)
    return episode


def play(cfg: PlayCommand, task_index: int = 0, *, keys: Keys | None = None,
         screen: Screen | None = None) -> dict[str, Any]:
    """A person plays task `task_index` (the one `watch --task` and `eval` use) with typed actions."""
    keys, screen = keys or Keys(), screen or Screen()
    task = pick_task(cfg.env, cfg.eval.split, cfg.eval.seed, task_index)
    controls = Controls(actor="you")
    env = WatchedEnv(cfg.env.make(), screen, controls)
    success, ending = False, "max_turns"
    try:
        env.reset(task)  # the env counts the turns and the reward
        screen.note("type an action and press Enter; 'quit' stops")
        while env.turn < cfg.rollout.max_turns:
            line = keys.read_line("action> ")
            if line is None or line.strip() == "quit":
                ending = "quit"
                break
            if not line.strip():
                continue
            step = env.step(line)
            if step.done:
                success, ending = bool(step.info.get("success", False)), "done"
                break
    finally:
        env.close()
    screen.summary(env.turn, env.total, success, ending)
    return {"turns": env.turn, "reward": env.total, "success": success, "ending": ending}
