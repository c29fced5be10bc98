"""ML tasks: a train split with labels, a test split without, labels the grader keeps.

Built-in tasks come from the datasets scikit-learn ships (no download); any folder with
`train.csv`, `test.csv`, `test_labels.csv` and `task.json` is a task too (see README).
The agent's working directory gets `train.csv`, `test.csv`, `sample_submission.csv` and
`description.md`; the labels of the test split never leave the grader.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# name -> (sklearn loader, kind, metric, what the rows are)
BUILTIN = {
    "iris": ("load_iris", "classification", "accuracy", "Iris flowers: 4 measurements, 3 species"),
    "wine": ("load_wine", "classification", "accuracy", "Wines: 13 chemical measurements, 3 cultivars"),
    "breast_cancer": ("load_breast_cancer", "classification", "f1",
                      "Breast tumour images: 30 cell-nucleus features, malignant (0) or benign (1)"),
    "digits": ("load_digits", "classification", "accuracy", "Handwritten digits: 8x8 pixel intensities, classes 0-9"),
    "diabetes": ("load_diabetes", "regression", "rmse",
                 "Diabetes patients: 10 baseline measurements, disease progression one year later"),
    "linnerud": ("load_linnerud", "regression", "rmse",
                 "Linnerud: 3 exercise counts, 3 physiological measurements to predict"),
}
METRICS = ("accuracy", "f1", "rmse", "mae")
LOWER_IS_BETTER = {"rmse", "mae"}
SUBMISSION = "submission.csv"


@dataclass
class MLTask:
    name: str
    kind: str  # classification | regression
    metric: str
    train: pd.DataFrame  # features + target column(s)
    test: pd.DataFrame  # "id" + features
    labels: pd.DataFrame  # "id" + target column(s): the grader's only
    targets: list[str]
    description: str = ""

    def files(self) -> dict[str, str]:
        """What goes into the agent's working directory (CSV text by file name)."""
        sample = pd.DataFrame({"id": self.test["id"]})
        for t in self.targets:
            sample[t] = self.train[t].mode().iloc[0] if self.kind == "classification" else float(self.train[t].mean())
        return {"train.csv": self.train.to_csv(index=False), "test.csv": self.test.to_csv(index=False),
                "sample_submission.csv": sample.to_csv(index=False), "description.md": self.page()}

    def page(self) -> str:
        """The task's description, in the manner of a Kaggle page."""
        goal = ("predict the class" if self.kind == "classification" else "predict the value") + \
            (f" of {', '.join(self.targets)}" if len(self.targets) > 1 else f" in column {self.targets[0]}")
        direction = "lower is better" if self.metric in LOWER_IS_BETTER else "higher is better"
        return (f"# {self.name} ({self.kind})\n{self.description}\n"
                f"Files: train.csv ({len(self.train)} rows, features and {', '.join(self.targets)}), "
                f"test.csv ({len(self.test)} rows, id and features). Task: {goal} for every test row.\n"
                f"Metric: {self.metric} ({direction}).\n"
                f"Write {SUBMISSION} with columns id,{','.join(self.targets)} (see sample_submission.csv).")


def builtin_task(name: str, split_seed: int, test_fraction: float = 0.3) -> MLTask:
    """One of scikit-learn's bundled datasets, split into train/test by `split_seed`."""
    if name not in BUILTIN:
        raise ValueError(f"unknown built-in task {name!r} (known: {', '.join(BUILTIN)})")
    import sklearn.datasets

    loader, kind, metric, about = BUILTIN[name]
    data = getattr(sklearn.datasets, loader)()
    features = [f"f{i}" for i in range(data.data.shape[1])]
    target = np.asarray(data.target)
    targets = ["target"] if target.ndim == 1 else [f"target_{i}" for i in range(target.shape[1])]
    frame = pd.DataFrame(np.asarray(data.data, dtype=float), columns=features)
    frame[targets] = target.reshape(len(frame), -1)
    order = np.random.default_rng(split_seed).permutation(len(frame))
    n_test = max(2, round(test_fraction * len(frame)))
    train, test = frame.iloc[order[n_test:]].reset_index(drop=True), frame.iloc[order[:n_test]].reset_index(drop=True)
    test.insert(0, "id", np.arange(len(test)))
    return MLTask(name, kind, metric, train, test.drop(columns=targets), test[["id", *targets]], targets,
                  f"{about}. Features f0..f{len(features) - 1} are numeric.")


def folder_task(path: str | Path) -> MLTask:
    """A user task folder: train.csv, test.csv (with an id column), test_labels.csv (id + targets),
    task.json ({"kind", "metric", "targets", optional "description"}); .parquet works for the CSVs too."""
    path = Path(path)
    spec = json.loads((path / "task.json").read_text())

    def table(stem: str) -> pd.DataFrame:
        for ext, read in ((".csv", pd.read_csv), (".parquet", pd.read_parquet)):
            if (path / f"{stem}{ext}").exists():
                return read(path / f"{stem}{ext}")
        raise FileNotFoundError(f"task folder {path}: no {stem}.csv or {stem}.parquet")

    for key in ("kind", "metric", "targets"):
        if key not in spec:
            raise ValueError(f"task folder {path}: task.json lacks {key!r}")
    if spec["metric"] not in METRICS:
        raise ValueError(f"task folder {path}: metric must be one of {METRICS}, got {spec['metric']!r}")
    test, labels = table("test"), table("test_labels")
    if "id" not in test or "id" not in labels:
        raise ValueError(f"task folder {path}: test and test_labels need an 'id' column")
    return MLTask(spec.get("name", path.name), spec["kind"], spec["metric"], table("train"), test, labels,
                  list(spec["targets"]), spec.get("description", ""))


@dataclass
class Grade:
    valid: bool
    reason: str  # why it is invalid, or the score in words
    metric_value: float | None = None
    score: float = 0.0  # metric normalised to [0, 1] (1 = perfect)


def grade(task: MLTask, submission_path: str | Path) -> Grade:
    """Check a submission file against the hidden labels and score it with the task's metric."""
    path = Path(submission_path)
    if path.is_symlink():  # the agent's directory: a link could point at any host file
        return Grade(False, f"{SUBMISSION} is a symbolic link, not a file")
    if not path.is_file():
        return Grade(False, f"no {SUBMISSION} was written")
    try:
        sub = pd.read_csv(path)
    except Exception as e:  # noqa: BLE001 - any unreadable file is an invalid submission
        return Grade(False, f"{SUBMISSION} is not a readable CSV ({type(e).__name__}: {str(e)[:200]})")
    missing = [c for c in ["id", *task.targets] if c not in sub.columns]
    if missing:
        return Grade(False, f"{SUBMISSION} lacks column(s) {', '.join(missing)}")
    if len(sub) != len(task.labels) or set(sub["id"].tolist()) != set(task.labels["id"].tolist()):
        return Grade(False, f"{SUBMISSION} must have one row per test id ({len(task.labels)} rows), got {len(sub)}")
    merged = task.labels.merge(sub[["id", *task.targets]], on="id", suffixes=("", "_pred"))
    truth = merged[task.targets].to_numpy()
    pred = merged[[f"{t}_pred" for t in task.targets]].to_numpy()
    if task.kind == "regression":
        pred = pd.DataFrame(pred).apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        if not np.isfinite(pred).all():
            return Grade(False, f"{SUBMISSION} has missing or non-numeric predictions")
    value = metric_value(task.metric, truth, pred)
    score = normalised_score(task, value)
    return Grade(True, f"{task.metric} = {value:.4f} (normalised score {score:.3f})", value, score)


def _label(x) -> str:
    """A class label as text, so 1, 1.0 and "1" are the same class."""
    try:
        value = float(x)
        return str(int(value)) if value.is_integer() else str(value)
    except (TypeError, ValueError):
        return str(x).strip()


def metric_value(metric: str, truth: np.ndarray, pred: np.ndarray) -> float:
    if metric == "accuracy":
        return float(np.mean([_label(a) == _label(b) for a, b in zip(truth.ravel(), pred.ravel())]))
    if metric == "f1":  # macro F1 over the true classes
        t, p = [_label(x) for x in truth.ravel()], [_label(x) for x in pred.ravel()]
        f1s = []
        for c in sorted(set(t)):
            tp = sum(a == c and b == c for a, b in zip(t, p))
            fp, fn = sum(a != c and b == c for a, b in zip(t, p)), sum(a == c and b != c for a, b in zip(t, p))
            f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
        return float(np.mean(f1s))
    err = truth.astype(float) - pred.astype(float)
    if metric == "rmse":
        return float(np.sqrt(np.mean(err ** 2)))
    if metric == "mae":
        return float(np.mean(np.abs(err)))
    raise ValueError(f"unknown metric {metric!r}")


def normalised_score(task: MLTask, value: float) -> float:
    """Accuracy and F1 as they are; an error metric as 1 - error / error of predicting the train
    mean (0 when no better than that baseline)."""
    if task.metric not in LOWER_IS_BETTER:
        return float(value)
    baseline = np.broadcast_to(task.train[task.targets].mean().to_numpy(dtype=float), (len(task.labels), len(task.targets)))
    base_value = metric_value(task.metric, task.labels[task.targets].to_numpy(), baseline)
    return 0.0 if base_value == 0 or math.isnan(value) else max(0.0, 1.0 - value / base_value)
