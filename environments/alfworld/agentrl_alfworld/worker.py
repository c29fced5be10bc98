"""Engine worker: `python -m agentrl_alfworld.worker` answers JSON lines on stdin/stdout.

Request: {"op": "load" | "step" | "expert", ...arguments}; reply: {"result": ...} or
{"error": "..."}. The protocol uses a private copy of stdout; file descriptor 1 itself points
at /dev/null so anything the engine prints cannot corrupt it. Exits at end of input.
"""
from __future__ import annotations

import json
import os
import sys


def main() -> None:
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    sys.stdout = open(os.devnull, "w")

    from .engine import Engine

    engine = Engine()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            reply = {"result": engine.call(request.pop("op"), **request)}
        except Exception as exc:  # reported to the caller, the worker goes on
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    engine.close()


if __name__ == "__main__":
    main()
