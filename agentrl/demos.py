"""Expert trajectories as a chat SFT dataset (TRL's conversational format: a `messages` column).

Each row is one expert episode played through the real environment: the env's system
prompt (if any), then user = observation / assistant = action turns, plus the task id,
the number of turns and whether the expert won. Saved as JSONL, Parquet, or a
`datasets` directory, so `trl sft --dataset_name <path>` or `datasets.load_dataset`
reads it as is.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentrl.env import EnvConfig, Task


@dataclass
class EnvFields:
    """The `--env.<field>` options of `agentrl export-demos`."""

    env: EnvConfig = field(default_factory=EnvConfig)


def expert_conversation(env_config: EnvConfig, task: Task) -> dict[str, Any] | None:
    """The expert's episode on `task` as a chat, or None when the env has no expert for it."""
    actions = env_config.expert_actions(task)
    if actions is None:
        return None
    env = env_config.make()
    try:
        observation = env.reset(task)
        messages = [{"role": "system", "content": env.system_prompt}] if env.system_prompt else []
        messages.append({"role": "user", "content": observation})
        success, turns = False, 0
        for action in actions:
            step = env.step(action)
            turns += 1
            messages.append({"role": "assistant", "content": action})
            if step.done:
                success = bool(step.info.get("success", False))
                break
            messages.append({"role": "user", "content": step.observation})
        return {"task_id": task.id, "messages": messages, "num_turns": turns, "success": success}
    finally:
        env.close()


def export_demonstrations(
    env_config: EnvConfig, n_tasks: int, out: str | Path, *, split: str = "train", seed: int = 0,
    successful_only: bool = True,
) -> tuple[Path, int]:
    """Write the expert's episodes on `n_tasks` tasks of `split`; returns (path, rows written)."""
    import datasets

    rows = [row for task in env_config.tasks(split, n_tasks, seed)
            if (row := expert_conversation(env_config, task)) is not None and (row["success"] or not successful_only)]
    if not rows:
        raise ValueError("no demonstrations: the environment has no expert, or it solved none of the tasks")
    return save_dataset(datasets.Dataset.from_list(rows), out), len(rows)


def save_dataset(dataset, out: str | Path) -> Path:
    """Write a `datasets.Dataset` as JSONL, Parquet (by suffix) or a `save_to_disk` directory."""
    out = Path(out)
    if out.suffix == ".jsonl":
        dataset.to_json(str(out), lines=True)
    elif out.suffix == ".parquet":
        dataset.to_parquet(str(out))
    else:
        dataset.save_to_disk(str(out))
    return out
