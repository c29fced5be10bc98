"""AppWorld environment servers: started on 127.0.0.1 ports, leased one per episode, health-checked,
restarted when dead, all stopped when the process exits.

Each server is AppWorld's own FastAPI app (`appworld.serve.environment:app` under uvicorn,
see serve.py) run by the AppWorld venv's Python, so pydantic 1 never meets the trainer's
process; it exits by itself when the trainer is gone, however that happened. A pool
either starts `size` local servers or uses given URLs (servers on other hosts, each started
there as `APPWORLD_ROOT=R python -m uvicorn appworld.serve.environment:app --port N`); the
latter are health-checked but not restarted from here.

Local servers share a per-pool APPWORLD_ROOT whose `data` links to the world and whose
`experiments/` (AppWorld's per-episode outputs) lives in a temp dir removed on close. Each
server runs in its own session with an address-space limit, so agent code that allocates
without bound kills only its server (its episode fails, the server is restarted).
"""
from __future__ import annotations

import atexit
import json
import os
import queue
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from .install import package_parent  # servers run `agentrl_appworld.serve` from here, in AppWorld's venv



class ServerDown(RuntimeError):
    """The server did not answer (connection refused/reset, timeout): it is dead or hung."""


class ServerError(RuntimeError):
    """The server answered with an HTTP error (e.g. an unknown task id)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, method: str, timeout: float, **body: Any) -> Any:
    """POST one AppWorld environment call; returns its "output"."""
    request = urllib.request.Request(f"{url}/{method}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return json.loads(reply.read())["output"]
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        raise ServerError(f"{url}/{method} answered HTTP {exc.code}: {detail}") from None
    except (OSError, urllib.error.URLError) as exc:  # refused, reset, timed out
        raise ServerDown(f"{url}/{method}: {getattr(exc, 'reason', exc)}") from None


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/", timeout=timeout) as reply:
            return reply.status == 200
    except (OSError, urllib.error.URLError):
        return False


@dataclass
class Server:
    url: str
    process: subprocess.Popen | None = None  # None: a server this pool did not start
    port: int = 0
    restarts: int = 0
    log_path: str = ""

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def running(self) -> bool:
        return self.process is None or self.process.poll() is None


@dataclass
class ServerPool:
    """`size` local servers of `python` on `world_root`'s data, or the given `urls`."""

    python: str = ""
    world_root: str = ""
    size: int = 4
    urls: list[str] = field(default_factory=list)
    memory_mb: int = 4096
    start_timeout: float = 120.0
    keep_outputs: bool = False

    def __post_init__(self) -> None:
        self._free: queue.Queue[Server] = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self.restart_log: list[str] = []
        self.run_root = ""
        if self.urls:
            self.servers = [Server(url.rstrip("/")) for url in self.urls]
        else:
            self.run_root = tempfile.mkdtemp(prefix="agentrl-appworld-")
            os.symlink(os.path.join(os.path.abspath(self.world_root), "data"), os.path.join(self.run_root, "data"))
            self.servers = [Server("", port=0) for _ in range(self.size)]
            for server in self.servers:
                self._spawn(server)
            for server in self.servers:
                self._wait_up(server)
        for server in self.servers:
            self._free.put(server)
        atexit.register(self.close)

    # --- processes -----------------------------------------------------------------------
    def _spawn(self, server: Server) -> None:
        server.port = free_port()
        server.url = f"http://127.0.0.1:{server.port}"
        server.log_path = os.path.join(self.run_root, f"server-{server.port}.log")
        limit = self.memory_mb * 2**20

        def limit_memory() -> None:  # in the child, before exec
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

        env = dict(os.environ, APPWORLD_ROOT=self.run_root, PYTHONUNBUFFERED="1", PYTHONPATH=package_parent())
        with open(server.log_path, "ab") as log:
            server.process = subprocess.Popen(
                [self.python, "-m", "agentrl_appworld.serve", "--port", str(server.port), "--parent", str(os.getpid())],
                env=env, cwd=self.run_root, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=limit_memory)

    def _wait_up(self, server: Server) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if server.process is not None and server.process.poll() is not None:
                raise RuntimeError(f"AppWorld server on port {server.port} exited with {server.process.returncode} "
                                   f"while starting; its log: {self._log_tail(server)}")
            if healthy(server.url):
                return
            time.sleep(0.2)
        raise TimeoutError(f"AppWorld server on port {server.port} not up after {self.start_timeout:.0f}s; "
                           f"its log: {self._log_tail(server)}")

    def _log_tail(self, server: Server) -> str:
        try:
            with open(server.log_path, errors="replace") as f:
                return f.read()[-1500:]
        except OSError:
            return "(no log)"

    @staticmethod
    def _kill(server: Server) -> None:
        proc = server.process
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()

    # --- leasing -------------------------------------------------------------------------
    def lease(self, timeout: float = 600.0) -> Server:
        """A server for one episode (waits for a free one); a dead one is restarted first."""
        try:
            server = self._free.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no AppWorld server free after {timeout:.0f}s ({len(self.servers)} in the pool; "
                               "run at most that many episodes at once)") from None
        try:
            if not server.running() or not healthy(server.url, timeout=10):
                self.restart(server, "found dead at lease")
        except Exception:
            self._free.put(server)
            raise
        return server

    def release(self, server: Server) -> None:
        if not self._closed:
            self._free.put(server)

    def restart(self, server: Server, reason: str) -> None:
        """Replace a dead or hung local server by a fresh one (a remote one can only be waited for)."""
        if server.process is None:
            if not healthy(server.url, timeout=10):
                raise ServerDown(f"AppWorld server {server.url} is down ({reason}); it is not one this pool started")
            return
        with self._lock:
            self._kill(server)
            self._spawn(server)
            server.restarts += 1
            self.restart_log.append(f"port {server.port}: {reason}")
        self._wait_up(server)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for server in self.servers:
            self._kill(server)
        if self.run_root and not self.keep_outputs:
            shutil.rmtree(self.run_root, ignore_errors=True)

    def outputs_dir(self, experiment_name: str) -> str | None:
        """Where AppWorld writes an episode's outputs (local pools only)."""
        return os.path.join(self.run_root, "experiments", "outputs", experiment_name) if self.run_root else None


# one pool per (python, world, size, urls) in a process: every env of a run shares it
_POOLS: dict[tuple, ServerPool] = {}
_POOLS_LOCK = threading.Lock()


def shared_pool(**kwargs: Any) -> ServerPool:
    key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()))
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None or pool._closed:
            pool = _POOLS[key] = ServerPool(**kwargs)
        return pool


def close_pools() -> None:
    with _POOLS_LOCK:
        for pool in _POOLS.values():
            pool.close()
        _POOLS.clear()
