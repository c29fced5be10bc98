"""AppWorld env-server throughput: code executions per second at 1 and 4 concurrent episodes, in one run.

Each concurrent episode is a thread driving its own `AppWorldEnv` (one server each, leased from
one pool of 4 local servers) on a task of the built world, for `--seconds` per setting, with
two kinds of code: `print(1)` (the server's round trip) and one real API call
(`apis.supervisor.show_profile()`). Prints executions/s per setting and the 4-vs-1 ratio.

    OMP_WAIT_POLICY=PASSIVE python bench/appworld_env.py [--seconds 10] [--python P --appworld_root R]
"""
from __future__ import annotations

import argparse
import os
import threading
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from agentrl_appworld import AppWorldConfig  # noqa: E402

CODES = {"print(1)": "```python\nprint(1)\n```",
         "api call": "```python\nprint(apis.supervisor.show_profile()['first_name'])\n```"}


def rate(cfg: AppWorldConfig, tasks, concurrent: int, code: str, seconds: float) -> float:
    envs = [cfg.make() for _ in range(concurrent)]
    for env, task in zip(envs, tasks, strict=False):
        env.reset(task)
        env.step(code)  # warm-up
    counts = [0] * concurrent
    stop = threading.Event()

    def drive(i: int) -> None:
        env = envs[i]
        while not stop.is_set():
            if env.interactions >= cfg.max_interactions - 1:  # stay inside the episode's budget
                env.reset(tasks[i])
            env.step(code)
            counts[i] += 1

    threads = [threading.Thread(target=drive, args=(i,)) for i in range(concurrent)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    time.sleep(seconds)
    stop.set()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t0
    for env in envs:
        env.close()
    return sum(counts) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--python", default=None, help="AppWorld venv python (default: the installed one)")
    parser.add_argument("--appworld_root", default=None)
    args = parser.parse_args()
    cfg = AppWorldConfig(num_servers=4, max_interactions=1000, python=args.python, appworld_root=args.appworld_root)
    tasks = cfg.tasks("train", 4, 0)
    t0 = time.perf_counter()
    cfg.pool()
    print(f"4 AppWorld servers up in {time.perf_counter() - t0:.1f}s (2-core machines: expect ~1.5x, not 4x)")
    print("env steps per second (a step = /execute + /task_completed)")
    print(f"{'code':<10} {'1 episode':>12} {'4 episodes':>12} {'ratio':>7}")
    for name, code in CODES.items():
        one = rate(cfg, tasks, 1, code, args.seconds)
        four = rate(cfg, tasks, 4, code, args.seconds)
        print(f"{name:<10} {one:>9.1f}/s {four:>9.1f}/s {four / one:>6.2f}x", flush=True)
    cfg.pool().close()


if __name__ == "__main__":
    main()
