"""The ALFWorld text environment: ALFWorld's own observations, commands and feedback.

`reset` loads the task's game into the real engine (TextWorld's PDDL env with ALFWorld's
demangler wrapper) and returns ALFWorld's first observation ("-= Welcome to TextWorld,
ALFRED! =-", the room, "Your task is to: ..."); with `instructions`, the system prompt says how
to answer and repeats the task, so it stays in view when the rollout keeps only recent turns.
`step` reads the first line of the policy's
text, stripped and lower-cased, and passes it to the engine as is: a command the game does
not know gets ALFWorld's own "Nothing happens.". With `admissible_commands`, every
observation ends with the commands the game accepts next.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from agentrl.env import Env, Step, Task, last_tagged

from .engine import lease, release

if TYPE_CHECKING:
    from .config import AlfWorldConfig

ADMISSIBLE_PREFIX = "Admissible commands: "
NOTHING_HAPPENS = "Nothing happens."


def instructions(admissible: bool) -> str:
    text = (
        "You are an agent in a household. Each observation describes what you see; the first one "
        "ends with your task. Reply with exactly one command per turn (only the first line of your "
        "reply is read), for example: go to countertop 1, open fridge 1, take egg 1 from countertop 1, "
        "move egg 1 to countertop 2, heat egg 1 with microwave 1, cool egg 1 with fridge 1, "
        "clean egg 1 with sinkbasin 1, use desklamp 1, examine egg 1, look, inventory."
    )
    if admissible:
        text += " Each observation ends with the list of admissible commands."
    return text


def task_line(feedback: str) -> str | None:
    """ "Your task is to: put a clean egg in microwave." out of the first observation."""
    for line in feedback.splitlines():
        if line.startswith("Your task is to: "):
            return line.strip()
    return None


def parse_command(action: str) -> str:
    """The command in a policy's text: the last <action>...</action> if there is one (a reasoning
    trace), else its first non-empty line; stripped, lower-cased."""
    tagged = last_tagged(action)
    if tagged is not None:
        return tagged.strip().lower()
    for line in action.strip().splitlines():
        if line.strip():
            return line.strip().lower()
    return ""


def render(feedback: str, admissible: list[str], show: bool) -> str:
    return f"{feedback}\n\n{ADMISSIBLE_PREFIX}{', '.join(admissible)}" if show else feedback


class AlfWorldEnv(Env):
    """One ALFWorld game per `reset`; the engine runs in a pooled worker process by default
    (see engine.py on why not in this process's threads)."""

    def __init__(self, config: AlfWorldConfig | None = None):
        if config is None:
            from .config import AlfWorldConfig

            config = AlfWorldConfig()
        self.config = config
        self.system_prompt = instructions(config.admissible_commands) if config.instructions else None
        self._engine = None
        self._admissible: list[str] = []
        self._info: dict = {}
        self.steps = 0
        self.done = True
        self.won = False

    def _engine_for_use(self):
        if self._engine is not None and not self._engine.alive:
            release(self._engine)
            self._engine = None
        if self._engine is None:
            self._engine = lease(in_process=not self.config.engine_process)
        return self._engine

    def reset(self, task: Task) -> str:
        gamefile = str(task.data["gamefile"])
        engine = self._engine_for_use()
        plan = self.config.expert_plans().get(gamefile, engine)
        state = engine.call("load", gamefile=gamefile)
        task_type = task.data.get("task_type") or json.loads(
            (Path(gamefile).parent / "traj_data.json").read_text())["task_type"]
        self._info = {"task_type": task_type, "gamefile": gamefile,
                      "expert_plan_length": None if plan is None else len(plan)}
        self._admissible = state["admissible"]
        self.steps, self.done, self.won = 0, False, False
        self._task, self._commands, self._plan = task, [], tuple(plan or ())
        if self.config.instructions:
            task_text = task_line(state["feedback"])
            base = instructions(self.config.admissible_commands)
            self.system_prompt = f"{base}\n\n{task_text}" if task_text else base
        return render(state["feedback"], self._admissible, self.config.admissible_commands)

    def step(self, action: str) -> Step:
        if self._engine is None or not self._info:
            raise RuntimeError("call reset() before step()")
        if self.done:
            raise RuntimeError("the episode is over; call reset() to start another")
        command = parse_command(action)
        invalid = command not in self._admissible
        state = self._engine.call("step", command=command)
        self._commands.append(command)
        self.steps += 1
        self._admissible = state["admissible"]
        self.won = state["won"]
        self.done = self.won or self.steps >= self.config.max_steps
        info = {"invalid_action": invalid, "command": command, **self._info}
        if self.done:
            info["success"] = self.won
        observation = render(state["feedback"], self._admissible, self.config.admissible_commands)
        return Step(observation=observation, reward=1.0 if self.won else 0.0, done=self.done, info=info)

    # --- search support (ReSim): the engine's state is rebuilt by replaying the commands ----------
    def snapshot(self) -> tuple:
        if not self._info:
            raise RuntimeError("call reset() before snapshot()")
        return (self._task, tuple(self._commands))

    def restore(self, snapshot: tuple) -> None:
        task, commands = snapshot
        self.reset(task)
        for command in commands:
            self.step(command)

    def candidate_actions(self) -> list[str]:
        """The admissible commands, the expert's next one first while the episode is on its plan
        (so that a narrow search tree still holds the expert's move)."""
        following = self._expert_next()
        return ([following] if following else []) + [c for c in self._admissible if c != following]

    def state_value(self) -> float:
        """1 when won; 0.9 ** (expert commands left) on the expert's plan; 0 off it (no estimate there)."""
        if self.won:
            return 1.0
        n = len(self._commands)
        on_plan = bool(self._plan) and tuple(self._commands) == self._plan[:n] and n < len(self._plan)
        return 0.9 ** (len(self._plan) - n) if on_plan else 0.0

    def _expert_next(self) -> str | None:
        n = len(self._commands)
        if self._plan and n < len(self._plan) and tuple(self._commands) == self._plan[:n]:
            return self._plan[n]
        return None

    @property
    def admissible(self) -> list[str]:
        return list(self._admissible)

    def close(self) -> None:
        engine, self._engine = self._engine, None
        release(engine)
