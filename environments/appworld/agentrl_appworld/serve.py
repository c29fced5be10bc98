"""One AppWorld environment server: `python -m agentrl_appworld.serve --port N [--host 127.0.0.1]`.

Runs in AppWorld's venv (APPWORLD_ROOT set): AppWorld's own FastAPI app under uvicorn, bound to
127.0.0.1 unless told otherwise. With `--parent PID` it exits as soon as that process is gone,
so a trainer killed by any signal (even SIGKILL, where no cleanup runs) leaves no server behind.
"""
from __future__ import annotations

import argparse
import os
import threading
import time


def exit_with_parent(parent: int) -> None:
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m agentrl_appworld.serve", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--parent", type=int, default=0, help="exit when this process (the trainer) is gone")
    args = parser.parse_args(argv)
    if args.parent:
        exit_with_parent(args.parent)
    import uvicorn

    uvicorn.run("appworld.serve.environment:app", host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
