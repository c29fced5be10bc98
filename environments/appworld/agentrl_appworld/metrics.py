"""AppWorld's rewards and metrics from its evaluator's per-task reports.

`/evaluate` on an env server runs AppWorld's own evaluator on one task and answers
{success, num_tests, passes, failures}. From those:
- the training reward is the fraction of the task's tests passed (LOOP's dense reward);
- TGC (task goal completion) = 100 x the fraction of tasks that pass every test;
- SGC (scenario goal completion) = 100 x the fraction of scenarios whose every task passes,
  a scenario being the tasks whose ids share the part before "_" (as `Metric` in AppWorld).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any


def pass_fraction(report: Mapping[str, Any]) -> float:
    """Fraction of the task's tests passed (0 when the task has no tests)."""
    return len(report["passes"]) / report["num_tests"] if report["num_tests"] else 0.0


def scenario_of(task_id: str) -> str:
    return task_id.split("_")[0]


def tgc_sgc(success_by_task: Mapping[str, bool]) -> tuple[float, float]:
    """(TGC, SGC) in percent, rounded to one decimal as AppWorld reports them."""
    if not success_by_task:
        return 0.0, 0.0
    by_scenario: dict[str, list[bool]] = defaultdict(list)
    for task_id, success in success_by_task.items():
        by_scenario[scenario_of(task_id)].append(bool(success))
    def percent(values: list[bool]) -> float:  # AppWorld's rounding: the mean to 4 places, then percent to 1
        return round(100 * round(sum(values) / len(values), 4), 1)

    return percent(list(success_by_task.values())), percent([all(v) for v in by_scenario.values()])
