"""MLEEnv: the agent writes and runs ML code in a sandbox; the last run is graded.

An episode: the task page and file list -> the agent writes/runs programs (each run is
instrumented, sandboxed, and its output shown without the markers) -> SUBMIT, or the run
budget is spent -> reward from the last run's milestones or its submission's test score.
Each run starts without a submission.csv, so the graded file is the graded run's own.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from agentrl.env import Env, Step, Task

from .actions import parse_action
from .instrument import StaticInstrumenter, new_nonce, reached_milestones, strip_markers
from .reward import partial_credit
from .sandbox import RunResult, Sandbox
from .tasks import SUBMISSION, MLTask, grade

if TYPE_CHECKING:
    from .config import MLEConfig

SYSTEM_PROMPT = ("You are an ML engineer. Solve the task in the working directory by writing a Python program "
                 "(one ```python block per turn; it is saved as solution.py and run). It must write submission.csv. "
                 "Answer SUBMIT when done.")


class MLEEnv(Env):
    system_prompt = SYSTEM_PROMPT

    def __init__(self, config: "MLEConfig", instrumenter=None) -> None:
        self.config = config
        self.instrumenter = instrumenter or StaticInstrumenter()
        self.task: MLTask | None = None
        self.sandbox: Sandbox | None = None
        self._dir: Path | None = None

    # --- episode -----------------------------------------------------------------------------
    def reset(self, task: Task) -> str:
        self.close()
        self.task = self.config.load_task(task)
        self._dir = Path(tempfile.mkdtemp(prefix="agentrl-mle-", dir=self.config.workdir_root))
        self.sandbox = Sandbox(self._dir / "work", self.config.sandbox)
        for name, text in self.task.files().items():
            (self.sandbox.workdir / name).write_text(text)
        self.runs, self.last_output = 0, ""
        self.last_milestones: list[str] = []
        self.ran = False
        files = ", ".join(sorted(self.task.files()))
        return f"{self.task.page()}\n\nWorking directory: {files}."

    def step(self, action: str) -> Step:
        if self.task is None or self.sandbox is None:
            raise RuntimeError("step() before reset()")
        parsed = parse_action(action)
        if parsed.kind == "invalid":
            return Step(parsed.reason, info={"invalid_action": True, "duration_s": 0.0})
        if parsed.kind == "submit":
            return self._finish("Submitted.")
        if parsed.kind == "read":
            return Step(self._read(parsed.name), info={"duration_s": 0.0})
        if parsed.kind in ("write", "write_run"):
            if len(parsed.code) > self.config.max_file_chars:
                return Step(f"File too long ({len(parsed.code)} characters, limit {self.config.max_file_chars}).",
                            info={"invalid_action": True, "duration_s": 0.0})
            self._write(parsed.name, parsed.code)
            if parsed.kind == "write":
                return Step(f"Wrote {parsed.name} ({len(parsed.code)} characters).", info={"duration_s": 0.0})
        return self._run(parsed.name)

    # --- actions -----------------------------------------------------------------------------
    def _write(self, name: str, code: str) -> None:
        """Write a file of the working directory as its sandbox user. The directory is the agent's:
        whatever is at `name` (a symlink to a host file, say) is removed, never written through."""
        path = self.sandbox.workdir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w") as handle:
            handle.write(code)
        if self.sandbox.uid is not None:
            os.chown(path, self.sandbox.uid, self.sandbox.uid)

    def _read(self, name: str) -> str:
        if name == "output":
            return self.last_output or "Nothing has run yet."
        path = self.sandbox.workdir / name
        if path.is_symlink() or not path.is_file():  # never follow the agent's links out of its directory
            return f"No file {name} in the working directory."
        text = path.read_text(errors="replace")
        limit = self.config.max_output_chars
        return text if len(text) <= limit else text[:limit] + f"\n... ({len(text) - limit} more characters)"

    def _run(self, name: str) -> Step:
        script = self.sandbox.workdir / name
        if script.is_symlink() or not script.is_file():
            return Step(f"No file {name} in the working directory.", info={"invalid_action": True, "duration_s": 0.0})
        nonce = new_nonce()
        source = script.read_text(errors="replace")
        try:
            instrumented = self.instrumenter(source, nonce)
        except SyntaxError as e:
            instrumented = None
            result = RunResult(1, "", f"SyntaxError: {e.msg} (line {e.lineno})", 0.0)
        if instrumented is not None:
            runner = self.sandbox.workdir / ".agentrl_run.py"
            self._write(runner.name, instrumented)
            (self.sandbox.workdir / SUBMISSION).unlink(missing_ok=True)
            result = self.sandbox.python(runner.name)
            runner.unlink(missing_ok=True)
        self.runs += 1
        self.ran = True
        self.last_milestones = reached_milestones(result.stdout, nonce)
        self.last_output = self._describe(result)
        info = {"duration_s": result.duration_s, "milestones": list(self.last_milestones),
                "exit_code": result.returncode, "limit": result.limit}
        if self.runs >= self.config.max_runs:
            return self._finish(self.last_output, info)
        return Step(self.last_output, info=info)

    def _describe(self, result: RunResult) -> str:
        limit = self.config.max_output_chars
        status = (f"Stopped: {result.limit}." if result.limit else
                  f"Exit code {result.returncode} after {result.duration_s:.1f} s.")
        parts = [status]
        for label, text in (("stdout", strip_markers(result.stdout)), ("stderr", result.stderr)):
            text = text.strip()
            if text:
                parts.append(f"{label}:\n{text[-limit:]}")
        check = grade(self.task, self.sandbox.workdir / SUBMISSION)
        parts.append(f"{SUBMISSION}: " + ("written, format valid." if check.valid else check.reason + "."))
        return "\n".join(parts)

    def _finish(self, observation: str, info: dict | None = None) -> Step:
        info = dict(info or {"duration_s": 0.0})
        result = grade(self.task, self.sandbox.workdir / SUBMISSION) if self.ran else None
        reward = partial_credit(self.last_milestones, result, self.config.reward)
        info.update(success=bool(result and result.valid), valid_submission=bool(result and result.valid),
                    metric=self.task.metric, metric_value=result.metric_value if result else None,
                    score=result.score if result else 0.0, milestones=list(self.last_milestones))
        return Step(observation, reward=reward, done=True, info=info)

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self.sandbox = None
