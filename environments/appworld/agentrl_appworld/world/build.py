"""Build an offline AppWorld world: `python -m agentrl_appworld.world.build --root DIR`.

Runs in AppWorld's venv. Writes $APPWORLD_ROOT/data (api_docs, base_dbs, tasks, datasets) for
`--scenarios` scenarios per template x 3 variants, seeded: the same arguments give the same
world. Scenarios are split (never a scenario across splits) into AppWorld's dataset names:
train, dev, test_normal. Every task is verified on the real engine (see task.verify_task).
`data/agentrl_world.json` records what was built; a build with the same arguments is a no-op.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sys
import time

VARIANTS = 3
SPLIT_CYCLE = ("train", "train", "dev", "test_normal")  # scenario s goes to SPLIT_CYCLE[s % 4]
BUILD_VERSION = 1


def scenario_id(template: str, index: int, seed: int) -> str:
    """7 hex characters like AppWorld's scenario ids (a task id is `<scenario>_<variant>`)."""
    return hashlib.sha1(f"{template}/{index}/{seed}".encode()).hexdigest()[:7]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentrl_appworld.world.build", description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="APPWORLD_ROOT to build (data/ is written under it)")
    parser.add_argument("--scenarios", type=int, default=4, help="scenarios per template (3 variants each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--templates", default="", help="comma-separated template names (default: all)")
    args = parser.parse_args(argv)
    if args.scenarios < 1:
        parser.error("--scenarios must be >= 1")
    root = os.path.abspath(args.root)
    os.environ["APPWORLD_ROOT"] = root  # read by appworld at import
    data = os.path.join(root, "data")
    manifest_path = os.path.join(data, "agentrl_world.json")

    from .base import build_base
    from .scenarios import all_templates
    from .task import verify_task, write_task

    templates = all_templates()
    if args.templates:
        wanted = args.templates.split(",")
        unknown = sorted(set(wanted) - {t.name for t in templates})
        if unknown:
            parser.error(f"--templates: unknown {unknown} (known: {[t.name for t in templates]})")
        templates = [t for t in templates if t.name in wanted]
    request = {"version": BUILD_VERSION, "seed": args.seed, "scenarios": args.scenarios,
               "templates": [t.name for t in templates]}
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            if {k: v for k, v in json.load(f).items() if k in request} == request:
                print(f"world at {root} is up to date")
                return 0
    t0 = time.monotonic()
    os.makedirs(data, exist_ok=True)
    build_base(data)
    print(f"api docs and base dbs: {time.monotonic() - t0:.0f}s", flush=True)
    shutil.rmtree(os.path.join(data, "tasks"), ignore_errors=True)
    splits: dict[str, list[str]] = {name: [] for name in dict.fromkeys(SPLIT_CYCLE)}
    for template in templates:
        for s in range(args.scenarios):
            scenario = scenario_id(template.name, s, args.seed)
            for v in range(1, VARIANTS + 1):
                task_id = f"{scenario}_{v}"
                write_task(data, task_id, template, random.Random(f"{args.seed}/{template.name}/{s}/{v}"))
                splits[SPLIT_CYCLE[s % len(SPLIT_CYCLE)]].append(task_id)
        print(f"{template.name}: {args.scenarios * VARIANTS} tasks written", flush=True)
    checks = [verify_task(data, task_id) for ids in splits.values() for task_id in ids]
    shutil.rmtree(os.path.join(root, "experiments", "outputs"), ignore_errors=True)  # the verification runs
    os.makedirs(os.path.join(data, "datasets"), exist_ok=True)
    for name, ids in splits.items():
        with open(os.path.join(data, "datasets", f"{name}.txt"), "w") as f:
            f.write("".join(f"{i}\n" for i in ids))
    manifest = {**request, "splits": {k: len(v) for k, v in splits.items()},
                "tests": sum(c["num_tests"] for c in checks), "build_seconds": round(time.monotonic() - t0, 1)}
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=2)
    print(f"world built at {root}: {manifest}")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # every file is written and closed; skip the atexit hooks of the hundreds of IPython shells AppWorld
    # opened (one per world): they take minutes and do nothing we need
    os._exit(code)
