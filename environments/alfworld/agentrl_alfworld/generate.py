"""Generate expert-checked ALFWorld games in ALFWorld's directory layout.

    python -m agentrl_alfworld.generate --out DIR --per-type N --seed S \\
        [--split train|valid_seen|valid_unseen] [--task-types 1 3 pick_two_obj_and_place ...] [--workers W]

Game i (0 <= i < N) of a task type uses seed S + i; existing games are kept. Prints one summary
line per task type (games, rejected attempts by reason, expert plan lengths, seconds) and the
directory to point `ALFWORLD_DATA` (or `--env.data_dir`) at.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .engine import lease, release
from .generator import SPLITS, generate_game
from .problem import TASK_TYPE_IDS, TASK_TYPES


def parse_task_types(values: list[str] | None) -> list[str]:
    """Task types given by number (1..6) or name; all six when empty."""
    if not values:
        return list(TASK_TYPES.values())
    out = []
    for value in values:
        name = TASK_TYPES.get(int(value)) if value.isdigit() else value if value in TASK_TYPE_IDS else None
        if name is None:
            raise ValueError(f"unknown task type {value!r} (use 1..6 or one of {sorted(TASK_TYPE_IDS)})")
        out.append(name)
    return out


def generate_many(out: str | Path, jobs: list[tuple[str, int]], split: str, workers: int = 1,
                  max_expert_steps: int = 50) -> tuple[dict[tuple[str, int], Path], Counter]:
    """Generate (task_type, seed) games, `workers` at a time (each in its own engine process
    when workers > 1). Returns the game paths and the summed stats."""
    stats: Counter = Counter()

    def one(job: tuple[str, int]) -> tuple[tuple[str, int], Path, Counter]:
        task_type, seed = job
        local: Counter = Counter()
        engine = lease() if workers > 1 else None  # None: the shared in-process engine
        try:
            path = generate_game(out, task_type, seed, split, engine=engine, stats=local,
                                 max_expert_steps=max_expert_steps)
        finally:
            release(engine)
        return job, path, local

    paths: dict[tuple[str, int], Path] = {}
    if workers <= 1:
        results = map(one, jobs)
    else:
        pool = ThreadPoolExecutor(max_workers=workers)
        results = pool.map(one, jobs)
    for job, path, local in results:
        paths[job] = path
        stats.update(local)
    if workers > 1:
        pool.shutdown()
    return paths, stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentrl_alfworld.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="dataset root (games go under OUT/json_2.1.1/<split>/)")
    parser.add_argument("--per-type", type=int, default=10, help="games per task type")
    parser.add_argument("--seed", type=int, default=0, help="first seed; game i uses seed + i")
    parser.add_argument("--split", choices=SPLITS, default="train")
    parser.add_argument("--task-types", nargs="*", help="1..6 or names (default: all six)")
    parser.add_argument("--workers", type=int, default=1, help="engine processes generating at once")
    parser.add_argument("--max-expert-steps", type=int, default=50, help="longest expert plan a game may need")
    args = parser.parse_args(argv)
    if args.per_type < 0 or args.seed < 0 or args.workers < 1:
        parser.error("--per-type and --seed must be >= 0, --workers >= 1")
    try:
        task_types = parse_task_types(args.task_types)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"{'task type':34s} {'games':>5s} {'plan len (min/mean/max)':>24s} {'sec':>6s}  rejected attempts")
    for task_type in task_types:
        t0 = time.perf_counter()
        jobs = [(task_type, args.seed + i) for i in range(args.per_type)]
        paths, stats = generate_many(args.out, jobs, args.split, args.workers, args.max_expert_steps)
        lengths = [len(json.loads(p.read_text()).get("walkthrough") or []) for p in paths.values()]
        span = f"{min(lengths)}/{sum(lengths) / len(lengths):.1f}/{max(lengths)}" if lengths else "-"
        rejected = {k.split(": ", 1)[1]: v for k, v in sorted(stats.items()) if k.startswith("rejected")}
        print(f"{task_type:34s} {len(paths):5d} {span:>24s} {time.perf_counter() - t0:6.1f}  {rejected or '-'}")
        sys.stdout.flush()
    print(f"games under {Path(args.out) / 'json_2.1.1' / args.split} (use ALFWORLD_DATA={args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
