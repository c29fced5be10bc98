"""The Sokoban text environment: the observation is the grid, the action a direction word."""
from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

from agentrl.env import Env, Step, Task

from .actions import ACTIONS, parse_action
from .levels import Level, parse_level, render_level
from .solver import DEFAULT_MAX_NODES, moves_to_solve, solve

if TYPE_CHECKING:
    from .config import SokobanConfig

#: Step budget when the optimal length is unknown (solver gave up) and max_steps is unset.
DEFAULT_MAX_STEPS = 100

ANSWER_HINT = "Answer with one of: up, down, left, right."


def blocked_message(move: str) -> str:
    return f"You cannot move {move}."


@lru_cache(maxsize=4096)
def solve_cached(level_text: str, max_nodes: int = DEFAULT_MAX_NODES) -> tuple[str, ...] | None:
    """`solve` memoised by level text: reset and expert_actions ask about the same levels."""
    solution = solve(level_text, max_nodes=max_nodes)
    return None if solution is None else tuple(solution)


@lru_cache(maxsize=65536)
def moves_to_solve_cached(level_text: str) -> float | None:
    """`moves_to_solve` memoised by the full (uncropped) level text: episodes revisit states."""
    return moves_to_solve(level_text)


def rules(floor: str = " ") -> str:
    floor_name = "a space" if floor == " " else f"{floor}"
    return (
        "You are playing Sokoban on a grid. Goal: push every box onto a target.\n"
        f"Symbols: # wall, {floor_name} floor, @ you, $ box, . target, * box on a target, "
        "+ you on a target. Everything outside the grid is wall.\n"
        "Each turn you move one square up, down, left or right. Walking into a box pushes it one "
        "square if the square behind it is free; boxes cannot be pulled, so avoid pushing one into "
        "a corner that is not a target.\n"
        f"{ANSWER_HINT}"
    )


class SokobanEnv(Env):
    """One Sokoban episode per `reset`; see SokobanConfig for rewards and limits."""

    def __init__(self, config: SokobanConfig | None = None):
        if config is None:
            from .config import SokobanConfig

            config = SokobanConfig()
        self.config = config
        self.level: Level | None = None
        self.max_steps = 0
        self.steps = 0
        self.done = False
        self.task: Task | None = None
        self.value = 0.0  # state_value() of the current state, kept only when value_shaping is on

    def _optimal_length(self, task: Task) -> int | None:
        if "optimal_length" in task.data:
            return task.data["optimal_length"]
        # level files: solve lazily (memoised); None when the solver gives up
        solution = solve_cached(task.data["level"])
        return None if solution is None else len(solution)

    def _max_steps(self, task: Task) -> int:
        cfg = self.config
        if cfg.max_steps is not None:
            return cfg.max_steps
        optimal = self._optimal_length(task)
        if optimal is None:
            return DEFAULT_MAX_STEPS
        return math.ceil(cfg.max_steps_factor * optimal) + cfg.max_steps_offset

    def _progress(self, remaining: float | None) -> float:
        """Fraction of the optimal solution done: 1 - moves left / moves at the start (0 when
        deadlocked, unknown, or further away than at the start)."""
        assert self.task is not None
        initial = self._optimal_length(self.task)
        if remaining is None or not initial or math.isinf(remaining):
            return 0.0
        return max(0.0, 1.0 - remaining / initial)

    def render(self) -> str:
        assert self.level is not None
        return render_level(self.level, floor=self.config.floor_symbol, crop=self.config.crop_border)

    def reset(self, task: Task) -> str:
        self.level = parse_level(task.data["level"])
        self.task = task
        self.max_steps = self._max_steps(task)
        self.steps = 0
        self.done = False
        self.value = self.state_value() if self.config.value_shaping else 0.0
        grid = self.render()
        return f"{rules(self.config.floor_symbol)}\n\n{grid}" if self.config.instructions else grid

    # --- search support (ReSim): levels are immutable, so a snapshot is a reference -----------
    def snapshot(self) -> tuple:
        return (self.level, self.steps, self.done, self.value)

    def restore(self, snapshot: tuple) -> None:
        self.level, self.steps, self.done, self.value = snapshot

    def candidate_actions(self) -> list[str]:
        return list(ACTIONS)

    def state_value(self) -> float:
        """0.9 ** (optimal moves left): 1 when solved, 0 when deadlocked; 0 if the solver gives up."""
        assert self.level is not None
        if self.level.solved:
            return 1.0
        remaining = moves_to_solve_cached(render_level(self.level))
        return 0.0 if remaining is None or math.isinf(remaining) else 0.9 ** remaining

    def step(self, action: str) -> Step:
        if self.level is None:
            raise RuntimeError("call reset() before step()")
        if self.done:
            raise RuntimeError("the episode is over; call reset() to start another")
        cfg = self.config
        self.steps += 1
        reward = 0.0 - cfg.step_penalty  # (not -penalty: avoids a -0.0 reward)
        info: dict = {"invalid_action": False}
        move = parse_action(action)
        if move is None:
            info["invalid_action"] = True
            observation = f'Invalid action "{action[:40]}". {ANSWER_HINT}\n{self.render()}'
        else:
            result = self.level.move(move)
            if result.pushed is not None:
                src, dst = result.pushed
                targets = self.level.targets
                reward += cfg.box_on_target_reward * ((dst in targets) - (src in targets))
            self.level = result.level
            info.update(action=move, moved=result.moved)
            observation = self.render()
            if not result.moved:  # say so: otherwise the observation repeats and a greedy policy can loop
                reward -= cfg.blocked_move_penalty
                if cfg.blocked_feedback:
                    observation = f"{blocked_message(move)}\n{observation}"
        info["boxes_on_target"] = self.level.boxes_on_target
        if cfg.value_shaping:
            value, self.value = self.value, self.state_value()
            reward += cfg.value_shaping * (self.value - value)
        remaining = None
        if cfg.end_on_deadlock and move is not None and result.pushed is not None and not self.level.solved:
            remaining = moves_to_solve_cached(render_level(self.level))
            info["deadlock"] = remaining is not None and math.isinf(remaining)
        if self.level.solved:
            reward += cfg.solve_reward
            self.done = True
            info["success"] = True
        elif self.steps >= self.max_steps or info.get("deadlock"):
            self.done = True
            info["success"] = False
            if cfg.progress_reward:
                if remaining is None:
                    remaining = moves_to_solve_cached(render_level(self.level))
                info["progress"] = self._progress(remaining)
                reward += cfg.progress_reward * info["progress"]
        return Step(observation=observation, reward=reward, done=self.done, info=info)
