"""The real TextWorld/ALFWorld engine, in this process or in a worker process.

TextWorld's PDDL env is not safe to use from several threads: every load/reset runs
fast-downward's Python translator (`fast_downward.pddl2sas`), which rewrites the module-global
`translate.options` (two differently optimised translations per state), `sys.argv` and
`sys.stdout` while it works. Two games loading at once in two threads can translate with each
other's options or leave `sys.stdout` pointing at a dead buffer. (Each PddlEnv does get its
own copy of libdownward.so, so the C state is per env.) The rollout calls many envs from
worker threads, so by default each env drives its engine in a child process
(`python -m agentrl_alfworld.worker`, JSON lines over pipes); the children are pooled and
reused across episodes. The in-process `LocalEngine` serialises every call on one lock: fine
for one thread at a time (the generator, tests, debugging).

The hand-coded expert picks among equal choices with the global `random`; expert runs seed it
from the game text so a game always gets the same plan. ALFWorld 0.4 renamed the command
"put X in/on Y" to "move X to Y" but the expert's state tracker still looks for "put" to
notice that it let go of an object; `_expert_wrapper` tells it about a move in the old words
(otherwise, in pick_two games, it keeps trying to place the first object again and falls
back to random commands). Translations are memoised per problem (`_install_translation_memo`): a reset
translates the problem it just loaded again, and a GRPO group loads one game many times.
"""
from __future__ import annotations

import atexit
import hashlib
import json
import os
import random
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

_LOCK = threading.RLock()  # every in-process engine call
MAX_EXPERT_STEPS = 150


class EngineError(RuntimeError):
    pass


_TRANSLATE_LOCK = threading.Lock()
_TRANSLATIONS: dict[tuple[str, bool], Any] = {}
_MAX_TRANSLATIONS = 8


def _install_translation_memo() -> None:
    """Route `fast_downward.pddl2sas` (called by TextWorld's PddlState) through a lock and a
    small memo: same (domain, problem, optimize) -> the same (task, sas) it produced before.
    PddlState only reads the task. The lock also keeps two threads from translating at once."""
    import fast_downward

    if getattr(fast_downward.pddl2sas, "_agentrl_memo", False):
        return
    original = fast_downward.pddl2sas

    def pddl2sas(domain: str, problem: str, verbose: bool = False, optimize: bool = False):
        key = (hashlib.sha1(f"{domain}\0{problem}".encode()).hexdigest(), bool(optimize))
        with _TRANSLATE_LOCK:
            if key not in _TRANSLATIONS:
                if len(_TRANSLATIONS) >= _MAX_TRANSLATIONS:
                    _TRANSLATIONS.pop(next(iter(_TRANSLATIONS)))
                _TRANSLATIONS[key] = original(domain, problem, verbose=verbose, optimize=optimize)
            return _TRANSLATIONS[key]

    pddl2sas._agentrl_memo = True
    fast_downward.pddl2sas = pddl2sas


def _expert_wrapper(env, expert_type: str):
    """ALFWorld's AlfredExpert around `env`; its hand-coded agent hears "move X to Y" as the
    "put X in/on Y" its state tracker was written for (see the module docstring)."""
    from alfworld.agents.environment.alfred_tw_env import AlfredExpert

    class Expert(AlfredExpert):
        def step(self, command):
            self.state, reward, done = self._wrapped_env.step(command)
            command = str(command)
            if command.startswith("move ") and " to " in command:
                obj, recep = command[len("move "):].split(" to ", 1)
                command = f"put {obj} in/on {recep}"
            self.prev_command = command
            self._gather_infos()
            return self.state, reward, done

    return Expert(env, expert_type=expert_type)


def _seed_of(gamefile: str) -> int:
    """A seed from the game's PDDL problem (not the file: writing the plan into it must not change it)."""
    problem = json.loads(Path(gamefile).read_text())["pddl_problem"]
    return int.from_bytes(hashlib.sha1(problem.encode()).digest()[:8], "big")


class Engine:
    """One TextWorld PddlEnv (ALFWorld's demangler and infos wrappers) reused for every game,
    plus a second one with ALFWorld's expert wrapper for expert runs. Single-threaded."""

    def __init__(self) -> None:
        self._play = None
        self._experts: dict[str, Any] = {}

    @staticmethod
    def _pddl_env(infos):
        _install_translation_memo()
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos
        from textworld.envs.pddl.pddl import PddlEnv

        return AlfredInfos(AlfredDemangler(PddlEnv(infos)))

    @staticmethod
    def _state(state) -> dict:
        return {"feedback": state["feedback"], "won": bool(state["won"]),
                "admissible": list(state["admissible_commands"])}

    def load(self, gamefile: str) -> dict:
        import textworld

        if self._play is None:
            self._play = self._pddl_env(textworld.EnvInfos(won=True, admissible_commands=True, extras=["gamefile"]))
        self._play.load(gamefile)
        return self._state(self._play.reset())

    def step(self, command: str) -> dict:
        if self._play is None:
            raise EngineError("no game loaded")
        state, _, _ = self._play.step(command)
        return self._state(state)

    def expert(self, gamefile: str, expert_type: str = "handcoded", max_steps: int = MAX_EXPERT_STEPS) -> dict:
        """Play ALFWorld's expert (AlfredExpert wrapper: hand-coded agent or planner) until won.
        Returns {"plan": [...], "won": bool, "error": str | None}."""
        import textworld

        env = self._experts.get(expert_type)
        if env is None:
            infos = textworld.EnvInfos(won=True, admissible_commands=True, facts=True,
                                       extras=["gamefile", "expert_plan"])
            env = self._experts[expert_type] = _expert_wrapper(self._pddl_env(infos), expert_type)
        saved = random.getstate()
        random.seed(_seed_of(gamefile))
        plan: list[str] = []
        try:
            env.load(gamefile)
            state = env.reset()
            if expert_type == "planner":
                for command in list(state["extra.expert_plan"])[:max_steps]:
                    state, _, _ = env.step(command)
                    plan.append(command)
            else:
                while not state["won"] and len(plan) < max_steps:
                    command = state["extra.expert_plan"][0]
                    state, _, _ = env.step(command)
                    plan.append(command)
            error = None if state["won"] else f"not won after {len(plan)} steps"
            return {"plan": plan, "won": bool(state["won"]), "error": error}
        except Exception as exc:  # HandCodedAgentFailed, "Timeout", planner failures
            return {"plan": plan, "won": False, "error": f"{type(exc).__name__}: {exc}"}
        finally:
            random.setstate(saved)

    def call(self, op: str, **kwargs) -> dict:
        if op not in ("load", "step", "expert"):
            raise EngineError(f"unknown op {op!r}")
        return getattr(self, op)(**kwargs)

    def close(self) -> None:
        # (the envs' libdownward copies stay loaded: dlclose-ing them crashes at exit)
        self._play, self._experts = None, {}


class LocalEngine:
    """An Engine in this process; every call holds the module-wide lock."""

    busy = False  # calls never outlive the lock

    def __init__(self) -> None:
        self._engine = Engine()

    def call(self, op: str, **kwargs) -> dict:
        with _LOCK:
            return self._engine.call(op, **kwargs)

    def close(self) -> None:
        with _LOCK:
            self._engine.close()

    @property
    def alive(self) -> bool:
        return True


class ProcessEngine:
    """An Engine in a child process (`python -m agentrl_alfworld.worker`). A call blocks until
    the child answers; `close()` from another thread kills the child and unblocks it."""

    def __init__(self) -> None:
        pkg_parent = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_parent, env.get("PYTHONPATH")) if p)
        env.setdefault("OMP_NUM_THREADS", "1")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "agentrl_alfworld.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=env, text=True, encoding="utf-8", bufsize=1)
        self._lock = threading.Lock()
        self.busy = False

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def call(self, op: str, **kwargs) -> dict:
        with self._lock:
            self.busy = True
            try:
                if not self.alive:
                    raise EngineError(f"engine worker exited (code {self._proc.returncode})")
                self._proc.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
                self._proc.stdin.flush()
                line = self._proc.stdout.readline()
            except (BrokenPipeError, OSError, ValueError) as exc:
                raise EngineError(f"engine worker died: {exc}") from None
            finally:
                self.busy = False
        if not line:
            raise EngineError(f"engine worker exited (code {self._proc.poll()})")
        reply = json.loads(line)
        if "error" in reply:
            raise EngineError(reply["error"])
        return reply["result"]

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self._proc.stdin, self._proc.stdout):
            try:
                stream.close()
            except Exception:
                pass


_SHARED: LocalEngine | None = None


def shared_local() -> LocalEngine:
    """One in-process engine for one-shot calls (expert runs): each Engine loads its own copy
    of libdownward (~34 MB), so short-lived users share this one."""
    global _SHARED
    with _LOCK:
        if _SHARED is None:
            _SHARED = LocalEngine()
        return _SHARED


# Idle engines, reused by the next env: starting a worker imports TextWorld (~2 s) and every
# Engine loads its own copy of libdownward (~34 MB), so neither is done per episode.
_IDLE: list[ProcessEngine] = []
_IDLE_LOCAL: list[LocalEngine] = []
_POOL_LOCK = threading.Lock()
MAX_IDLE = int(os.environ.get("AGENTRL_ALFWORLD_MAX_IDLE_WORKERS", "64"))


def lease(in_process: bool = False) -> LocalEngine | ProcessEngine:
    """An idle engine of the kind asked for, or a new one."""
    pool = _IDLE_LOCAL if in_process else _IDLE
    with _POOL_LOCK:
        while pool:
            engine = pool.pop()
            if engine.alive:
                return engine
            engine.close()
    return LocalEngine() if in_process else ProcessEngine()


def release(engine: LocalEngine | ProcessEngine | None) -> None:
    """Give an engine back: a healthy idle one returns to the pool, anything else is closed
    (a worker still busy with a call, e.g. one that timed out, is killed)."""
    if engine is None:
        return
    if engine.alive and not engine.busy:
        pool = _IDLE_LOCAL if isinstance(engine, LocalEngine) else _IDLE
        with _POOL_LOCK:
            if len(pool) < MAX_IDLE:
                pool.append(engine)
                return
    engine.close()


@atexit.register
def shutdown_pool() -> None:
    with _POOL_LOCK:
        workers, _IDLE[:] = list(_IDLE), []
    for worker in workers:
        worker.close()
