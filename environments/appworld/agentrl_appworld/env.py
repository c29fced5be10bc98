"""The AppWorld env, a client of an AppWorld environment server.

`reset` leases a server from the pool and opens the task's world (`/initialize`, with an
experiment name of its own so a LOOP group's K episodes of one task never share outputs).
`step` runs the reply's code block (`/execute`); the episode ends when the agent calls
`apis.supervisor.complete_task(...)` or after `max_interactions` executions, and then
AppWorld's evaluator scores it (`/evaluate`): reward = fraction of the task's tests passed
(or success, with `reward=success`), `success` = every test passed.

A server that stops answering is restarted and the episode fails with the reason (the
rollout records it; other episodes go on). AppWorld's own guard refuses unsafe calls
(os.system, subprocess, open, ...) with an output that says so, and the episode goes on.
"""
from __future__ import annotations

import shutil
import uuid
from typing import TYPE_CHECKING, Any

from agentrl.env import Env, Step, Task

from .metrics import pass_fraction
from .prompt import extract_code, instructions, task_text, truncate
from .servers import Server, ServerDown, post

if TYPE_CHECKING:
    from .config import AppWorldConfig

NO_BLOCK_NOTE = "No code block found: your reply was run as code. Write code in a ```python block."


class AppWorldEnv(Env):
    def __init__(self, config: AppWorldConfig | None = None):
        if config is None:
            from .config import AppWorldConfig

            config = AppWorldConfig()
        self.config = config
        self.pool = config.pool()
        self.server: Server | None = None
        self.task_id: str | None = None
        self.experiment = ""
        self.interactions = 0
        self.done = True
        self.report: dict[str, Any] | None = None

    def _call(self, method: str, timeout: float = 120.0, **body: Any) -> Any:
        assert self.server is not None
        try:
            return post(self.server.url, method, timeout, **body)
        except ServerDown as exc:
            server, self.server, self.task_id = self.server, None, None
            try:
                self.pool.restart(server, str(exc))
            finally:
                self.pool.release(server)
            raise ServerDown(f"AppWorld server died during the episode ({exc}); it was restarted") from None

    def reset(self, task: Task) -> str:
        self._end_world()
        if self.server is None:
            self.server = self.pool.lease()
        self.task_id = task.data.get("task_id", task.id)
        self.experiment = f"agentrl-{uuid.uuid4().hex[:12]}"
        info = self._call("initialize", task_id=self.task_id, experiment_name=self.experiment,
                          max_interactions=self.config.max_interactions + 1,
                          timeout_seconds=self.config.execution_timeout)
        self.interactions, self.done, self.report = 0, False, None
        text = task_text(info.get("instruction", ""), info.get("supervisor") or {})
        self.system_prompt = f"{instructions(self.config.max_interactions)}\n\n{text}" if self.config.instructions \
            else None
        return text

    def step(self, action: str) -> Step:
        if self.task_id is None or self.server is None:
            raise RuntimeError("call reset() before step()")
        if self.done:
            raise RuntimeError("the episode is over; call reset() to start another")
        code, found = extract_code(action)
        self.interactions += 1
        output = str(self._call("execute", timeout=self.config.execution_timeout + 60, task_id=self.task_id,
                                code=code))
        if not found:
            output = f"{NO_BLOCK_NOTE}\n{output}"
        completed = bool(self._call("task_completed", task_id=self.task_id))
        info: dict[str, Any] = {"invalid_action": not found, "task_id": self.task_id, "server": self.server.url}
        reward = 0.0
        if completed or self.interactions >= self.config.max_interactions:
            self.done = True
            report = self._call("evaluate", task_id=self.task_id, suppress_errors=True, report=False)
            self.report = report
            fraction = pass_fraction(report)
            reward = fraction if self.config.reward == "pass_fraction" else float(report["success"])
            info.update(success=bool(report["success"]), pass_fraction=fraction, num_tests=report["num_tests"],
                        tests_passed=len(report["passes"]), task_completed=completed)
            self._end_world()
        return Step(observation=truncate(output, self.config.max_observation_chars), reward=reward, done=self.done,
                    info=info)

    def _end_world(self) -> None:
        """Close the open world (if any) and drop its outputs; the server stays leased."""
        if self.server is not None and self.task_id is not None:
            try:
                post(self.server.url, "close", 30.0, task_id=self.task_id)
            except Exception:  # closing is best effort; a dead server is found at the next lease
                pass
            outputs = self.pool.outputs_dir(self.experiment)
            if outputs and not self.config.keep_outputs:
                shutil.rmtree(outputs, ignore_errors=True)
        self.task_id = None

    def close(self) -> None:
        self._end_world()
        server, self.server = self.server, None
        if server is not None:
            self.pool.release(server)
