"""MLEConfig: the `--env.*` fields, task lists and the expert's programs."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from agentrl.env import EnvConfig, Task

from .reward import RewardConfig
from .sandbox import SandboxLimits
from .tasks import BUILTIN, MLTask, builtin_task, folder_task

SPLITS = ("train", "test")
_TEST_SEED_OFFSET = 1_000_000_007  # test tasks' split seeds live in their own range


@dataclass
class MLEConfig(EnvConfig):
    """ML-engineering tasks in a sandbox: scikit-learn's bundled datasets and/or task folders."""

    datasets: list[str] = field(default_factory=lambda: list(BUILTIN))  # built-in tasks to draw from
    task_dirs: list[str] = field(default_factory=list)  # user task folders (train split)
    test_task_dirs: list[str] = field(default_factory=list)  # user task folders (test split)
    test_fraction: float = 0.3  # share of a built-in dataset's rows in its test split
    max_runs: int = 3  # the episode ends (graded) after this many program runs
    instrumenter: str = "static"  # static | lm
    instrumenter_model: str | None = None  # lm: the frozen model (HF id or path), served by the HF engine
    max_output_chars: int = 2000  # of stdout/stderr shown per run
    max_file_chars: int = 20_000  # longest file the agent may write
    concurrency: int = 2  # sandboxed programs running at once (each may use a core)
    workdir_root: str | None = None  # where working directories go (None: the system temp dir)
    sandbox: SandboxLimits = field(default_factory=SandboxLimits)
    reward: RewardConfig = field(default_factory=RewardConfig)

    def validate(self) -> None:
        unknown = [d for d in self.datasets if d not in BUILTIN]
        if unknown:
            raise ValueError(f"datasets: unknown {unknown} (built-in: {', '.join(BUILTIN)})")
        if not self.datasets and not self.task_dirs:
            raise ValueError("datasets and task_dirs are both empty: no tasks")
        checks = [("test_fraction", 0 < self.test_fraction < 1, "must be in (0, 1)"),
                  ("max_runs", self.max_runs >= 1, "must be >= 1"),
                  ("instrumenter", self.instrumenter in ("static", "lm"), "must be static or lm"),
                  ("instrumenter_model", self.instrumenter != "lm" or bool(self.instrumenter_model),
                   "is needed when instrumenter is lm"),
                  ("max_output_chars", self.max_output_chars > 0, "must be > 0"),
                  ("concurrency", self.concurrency >= 1, "must be >= 1")]
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"{name} {rule} (got {getattr(self, name)!r})")
        for path in [*self.task_dirs, *self.test_task_dirs]:
            folder_task(path)  # a broken folder fails here, before any heavy work

    def make(self):
        from .env import MLEEnv

        return MLEEnv(self, _lm_instrumenter(self.instrumenter_model) if self.instrumenter == "lm" else None)

    def tasks(self, split: str, n: int, seed: int) -> list[Task]:
        """`n` tasks of `split`: the built-in datasets and the split's task folders in turn (from a
        seed-chosen start, so small draws still cover every source), each built-in one with its own
        train/test row split (seeded; train and test tasks use disjoint seeds)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} (got {split!r})")
        folders = self.task_dirs if split == "train" else self.test_task_dirs
        sources = [("builtin", d) for d in self.datasets] + [("folder", f) for f in folders]
        tasks, start = [], seed % len(sources)
        for i in range(n):
            kind, name = sources[(start + i) % len(sources)]
            if kind == "folder":
                tasks.append(Task(f"mle/{split}/folder/{name}/{i}", {"folder": name}))
                continue
            split_seed = (seed * 100_003 + i) % _TEST_SEED_OFFSET + (_TEST_SEED_OFFSET if split == "test" else 0)
            tasks.append(Task(f"mle/{split}/{name}/{split_seed}", {"dataset": name, "split_seed": split_seed}))
        return tasks

    def load_task(self, task: Task) -> MLTask:
        if "folder" in task.data:
            return folder_task(task.data["folder"])
        return _builtin(task.data["dataset"], int(task.data["split_seed"]), self.test_fraction)

    def expert_actions(self, task: Task) -> list[str] | None:
        ml_task = self.load_task(task)
        seed = int(task.data.get("split_seed", 0))
        return [f"```python\n{expert_program(ml_task.kind, seed % 2)}```", "SUBMIT"]

    def extra_texts(self) -> list[str]:
        return [expert_program(kind, v) for kind in ("classification", "regression") for v in (0, 1)]

    def concurrency_limit(self) -> int | None:
        return self.concurrency

    def metrics(self, episodes: list) -> dict[str, float]:
        """Mean normalised test score and the share of valid submissions."""
        finals = [e.turns[-1].info for e in episodes if e.turns]
        if not finals:
            return {}
        return {"valid_submission_rate": sum(bool(i.get("valid_submission")) for i in finals) / len(finals),
                "mean_score": sum(float(i.get("score") or 0.0) for i in finals) / len(finals)}


@lru_cache(maxsize=64)
def _builtin(name: str, split_seed: int, test_fraction: float) -> MLTask:
    return builtin_task(name, split_seed, test_fraction)


@lru_cache(maxsize=2)
def _lm_instrumenter(model: str):
    from agentrl.engines.hf import HFEngine

    from .instrument import LMInstrumenter

    return LMInstrumenter(HFEngine(model))


_MODELS = {
    ("classification", 0): ("from sklearn.linear_model import LogisticRegression", "LogisticRegression(max_iter=2000)"),
    ("classification", 1): ("from sklearn.ensemble import RandomForestClassifier",
                            "RandomForestClassifier(n_estimators=100, random_state=0)"),
    ("regression", 0): ("from sklearn.linear_model import Ridge", "Ridge(alpha=1.0)"),
    ("regression", 1): ("from sklearn.ensemble import RandomForestRegressor",
                        "RandomForestRegressor(n_estimators=100, random_state=0)"),
}


def expert_program(kind: str, variant: int) -> str:
    """A correct, short scikit-learn solution for any task of `kind` (its file layout is shared)."""
    imports, model = _MODELS[(kind, variant)]
    return f"""import pandas as pd
{imports}
train = pd.read_csv("train.csv")
test = pd.read_csv("test.csv")
targets = [c for c in pd.read_csv("sample_submission.csv").columns if c != "id"]
X = train.drop(columns=targets)
y = train[targets[0]] if len(targets) == 1 else train[targets]
model = {model}
model.fit(X, y)
pred = model.predict(test.drop(columns=["id"]))
submission = pd.DataFrame(pred.reshape(len(test), -1), columns=targets)
submission.insert(0, "id", test["id"])
submission.to_csv("submission.csv", index=False)
"""
