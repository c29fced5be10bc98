"""One task in AppWorld's own format, written and then checked on AppWorld's real engine.

A scenario module gives `Template`s; `Template.build(models, supervisor, rng)` adds the task's
records to an in-memory copy of the base DBs and returns a `TaskSpec`. `write_task` saves
what AppWorld's loader reads (`$APPWORLD_ROOT/data/tasks/<scenario>_<n>/`):

    specs.json                     instruction, supervisor, datetime, db_version
    dbs/<app>.jsonl                the start state as SQL changes against data/base_dbs
    dbs/model_hashes.json
    ground_truth/solution.py       def solution(apis, requester): ...
    ground_truth/evaluation.py     def evaluate(test, public_data, private_data, main_user, models, ground_truth_answer)
    ground_truth/{answer,public_data,private_data,metadata,required_apps,test_data}.json

`verify_task` runs the ground-truth solution and an empty attempt in AppWorld and writes
`test_data.json` (each test labelled no_op_pass when the empty attempt passes it, as
`TestTracker.prepare_test_data` does); it fails the build unless the solution passes every
test and the empty attempt fails at least one.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from textwrap import dedent
from typing import Any

from appworld.apps import get_all_apps
from appworld.collections.models import ModelCollection
from appworld.common.constants import CANARY_STRING, DB_VERSION

from ..prompt import SOLUTION_CALL
from .people import TASK_DATETIME, Supervisor



@dataclass
class TaskSpec:
    instruction: str
    solution: str  # source of `def solution(apis, requester): ...`
    evaluation: str  # source of evaluation.py (imports + `def evaluate(...)`)
    answer: Any = None  # ground-truth answer (None: the task asks no question)
    public_data: dict[str, Any] = field(default_factory=dict)
    private_data: dict[str, Any] = field(default_factory=dict)
    difficulty: int = 1


@dataclass(frozen=True)
class Template:
    """A kind of task (e.g. "count my notes with a tag"); each scenario is one seeded
    instance, with 3 variants that differ in their data like AppWorld's scenarios."""

    name: str
    apps: tuple[str, ...]
    build: Callable[[ModelCollection, Supervisor, random.Random], TaskSpec]


def login_code(app: str, username: str = 'profile["email"]') -> str:
    """Solution lines that log the supervisor into `app` the way AppWorld's own solutions do."""
    return dedent(f"""\
        passwords = {{p["account_name"]: p["password"] for p in apis.supervisor.show_account_passwords()}}
        profile = apis.supervisor.show_profile()
        token = apis.{app}.login(username={username}, password=passwords["{app}"])["access_token"]
    """)


def indent(code: str, spaces: int = 4) -> str:
    """`code` indented as a function body (for composing solutions from snippets)."""
    pad = " " * spaces
    return "".join(f"{pad}{line}\n" if line.strip() else "\n" for line in dedent(code).splitlines())


def all_pages(var: str, call: str, spaces: int = 4) -> str:
    """Solution lines gathering every page of `call` (an API call passing `page_index=page`) into `var`."""
    return indent(f"""\
        {var}, page = [], 0
        while True:
            batch = {call}
            if not batch:
                break
            {var} += batch
            page += 1
        """, spaces)


def write_task(data_dir: str, task_id: str, template: Template, rng: random.Random) -> TaskSpec:
    tdir = os.path.join(data_dir, "tasks", task_id)
    shutil.rmtree(tdir, ignore_errors=True)
    gt = os.path.join(tdir, "ground_truth")
    os.makedirs(gt)
    apps = get_all_apps()
    models = ModelCollection.load(from_db_home_path=os.path.join(data_dir, "base_dbs"),
                                  to_db_home_path=f":memory:build-{task_id}", load_apps=apps)
    supervisor = Supervisor(models, rng)
    spec = template.build(models, supervisor, rng)
    supervisor.add_task_row(spec.instruction)
    models.save(db_home_path=os.path.join(tdir, "dbs"), format="changes", app_names=list(apps),
                delete_if_exists=True, save_model_hashes=True)
    models.close()

    profile = {k: getattr(supervisor.person, k) for k in ("first_name", "last_name", "email", "phone_number")}
    specs = {"instruction": spec.instruction, "supervisor": profile, "datetime": TASK_DATETIME.isoformat(),
             "db_version": DB_VERSION, "canary_string": CANARY_STRING}
    solution = dedent(spec.solution).strip() + "\n"

    def write(name: str, content: Any) -> None:
        text = content if isinstance(content, str) else json.dumps(content, indent=2)
        with open(os.path.join(gt, name), "w") as f:
            f.write(text)

    with open(os.path.join(tdir, "specs.json"), "w") as f:
        json.dump(specs, f, indent=2)
    write("solution.py", solution)
    write("evaluation.py", dedent(spec.evaluation).strip() + "\n")
    write("answer.json", json.dumps(spec.answer))
    write("public_data.json", spec.public_data)
    write("private_data.json", spec.private_data)
    write("required_apps.json", list(template.apps))
    write("test_data.json", "null")  # filled by verify_task from real runs
    body = solution.splitlines()[1:]  # minimal-mode metadata: AppWorld's loader requires these counts
    write("metadata.json", {
        "difficulty": spec.difficulty, "mode": "minimal", "template": template.name,
        "num_apps": len(template.apps), "num_apis": len(set(re.findall(r"apis\.(\w+\.\w+)", solution))),
        "num_solution_code_lines": len([line for line in body if line.strip()]),
    })
    return spec


def verify_task(data_dir: str, task_id: str) -> dict[str, Any]:
    """Ground truth and an empty attempt on AppWorld's engine; writes test_data.json."""
    from appworld import AppWorld

    gt = os.path.join(data_dir, "tasks", task_id, "ground_truth")
    with open(os.path.join(gt, "solution.py")) as f:
        solution = f.read()
    trackers = {}
    for attempt, code in (("gt", solution + SOLUTION_CALL), ("empty", None)):
        world = AppWorld(task_id=task_id, experiment_name=f"agentrl-build-{attempt}")
        try:
            output = world.execute(code) if code else ""
            trackers[attempt] = (world.evaluate(suppress_errors=True).to_dict(), output)
        finally:
            world.close()
    (gt_eval, gt_output), (empty_eval, _) = trackers["gt"], trackers["empty"]
    if not gt_eval["success"] or not gt_eval["passes"]:
        fails = [f["requirement"] for f in gt_eval["failures"]]
        raise RuntimeError(f"{task_id}: the ground-truth solution fails {fails} (its output: {gt_output[-2000:]})")
    if empty_eval["success"]:
        raise RuntimeError(f"{task_id}: an empty attempt passes every test; the task tests nothing")
    empty_passes = {p["requirement"] for p in empty_eval["passes"]}
    test_data = [{"requirement": p["requirement"],
                  "label": "no_op_pass" if p["requirement"] in empty_passes else "no_op_fail"}
                 for p in gt_eval["passes"]]
    with open(os.path.join(gt, "test_data.json"), "w") as f:
        json.dump(test_data, f, indent=2)
    return {"task_id": task_id, "num_tests": len(test_data), "empty_passes": len(empty_passes)}
