"""Counts for the fault-injection suite: each case records what it injected and what became of
every episode; the suite's summary (conftest.py) prints them at the end of the run."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

CASES: list[dict] = []


def account(case: str, injected: int, episodes: list, expected: int) -> dict:
    """Record `case` and check its books: every one of the `expected` episodes is there once,
    completed or failed with a reason. Returns the row (counts by failure reason included)."""
    ids = [e.episode_id for e in episodes]
    duplicated = len(ids) - len(set(ids))
    failed = [e for e in episodes if e.failed]
    row = {
        "case": case, "injected": injected, "episodes": expected,
        "completed": len(episodes) - len(failed), "failed": len(failed),
        "lost": expected - len(set(ids)), "duplicated": duplicated,
        "reasons": Counter(reason_kind(e.failure_reason) for e in failed),
    }
    CASES.append(row)
    assert all(e.failure_reason for e in failed), "a failed episode without a reason"
    assert row["lost"] == 0 and duplicated == 0, row
    return row


def saved_train_episodes(run_dir, iterations: int) -> list[list]:
    """Each iteration's episodes as the trainer saved them (a run with save_episodes >= the batch)."""
    from agentrl.episode import load_episodes

    return [load_episodes(str(Path(run_dir) / "episodes" / f"train_{it:05d}.jsonl")) for it in range(1, iterations + 1)]


def reason_kind(reason: str) -> str:
    """'RuntimeError: injected crash at turn 2' -> 'RuntimeError'; 'timeout: ...' -> 'timeout'."""
    return reason.split(":", 1)[0]
