"""Run untrusted agent code: own namespaces, own filesystem view, own uid, hard limits.

Each run is a child of `unshare --net --mount --pid --fork --kill-child`:
- network: a fresh network namespace, whose only interface is its own loopback (down),
  so nothing, not even 127.0.0.1 of the host, can be reached;
- filesystem: a new root (a read-only tmpfs) holding read-only bind mounts of the system
  directories and the Python installation, the working directory at /workdir (the only
  writable place besides a private, size-capped /tmp), nothing else of the host: hidden
  labels, other runs' directories and the user's files are not in the view at all;
- processes: a new PID namespace; when the program's process tree ends, or the wall clock
  runs out and the sandbox is killed, the kernel kills every process left in it;
- identity: as root, each sandbox runs under its own random unprivileged uid; without
  root, a user namespace maps the caller, and every capability is dropped either way;
- limits: RLIMIT_AS (memory per process), RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_NPROC, plus a
  memory and a pids cgroup where the machine lets us create them; a wall-clock timeout.

If neither root nor user namespaces are available, `Sandbox` raises `SandboxUnavailable`
before running anything (fail closed): agent code never runs unconfined.
"""
from __future__ import annotations

import functools
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

INSIDE_WORKDIR = "/workdir"
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")

# Runs as (namespace) root inside the new namespaces, before the program: builds the view,
# joins the cgroups, switches root, then runs the program unprivileged as a child of this
# shell (so the program is never PID 1, whose signal rules differ).
_INNER = r"""
set -e
PATH="/usr/sbin:/sbin:$PATH"
R="$1"; W="$2"; TMP_MB="$3"; CGROUPS="$4"; shift 4
for procs in $CGROUPS; do echo $$ > "$procs"; done
mount --make-rprivate /
mount -t tmpfs -o size=16m,mode=755 agentrl-root "$R"
# the private /tmp first: an interpreter or venv under the host's /tmp is bound inside it, not hidden by it
mkdir -p "$R/tmp"; mount -t tmpfs -o size="${TMP_MB}m",mode=1777 agentrl-tmp "$R/tmp"
while read -r src; do
  [ -e "$src" ] || continue
  if [ -L "$src" ]; then mkdir -p "$R$(dirname "$src")"; ln -s "$(readlink "$src")" "$R$src"; continue; fi
  mkdir -p "$R$src"; mount --rbind "$src" "$R$src"; mount -o remount,bind,ro "$R$src"
done <<EOF
$AGENTRL_RO_PATHS
EOF
mkdir -p "$R/workdir" "$R/dev" "$R/proc" "$R/.old"
mount --bind "$W" "$R/workdir"
for n in null zero random urandom; do touch "$R/dev/$n"; mount --bind "/dev/$n" "$R/dev/$n"; done
ln -s /proc/self/fd "$R/dev/fd"
mkdir "$R/dev/shm"; mount -t tmpfs -o size="${TMP_MB}m",mode=1777 agentrl-shm "$R/dev/shm"
mount -t proc proc "$R/proc"
mount -o remount,ro "$R"
cd "$R"; pivot_root . .old; umount -l /.old
cd /workdir
unset AGENTRL_RO_PATHS
set +e
"$@"
exit $?
"""


class SandboxUnavailable(RuntimeError):
    """This machine cannot isolate agent code (no namespaces): nothing is run."""


@dataclass
class SandboxLimits:
    wall_s: float = 60.0
    cpu_s: int = 60
    memory_mb: int = 2048  # address space per process, and the cgroup's total where there is one
    max_processes: int = 32
    max_file_mb: int = 64  # largest file (and stdout/stderr) the program may write
    tmp_mb: int = 64  # size of the private /tmp
    threads: int = 1  # OMP/BLAS threads

    def validate(self) -> None:
        for name in ("wall_s", "cpu_s", "memory_mb", "max_processes", "max_file_mb", "tmp_mb", "threads"):
            if getattr(self, name) <= 0:
                raise ValueError(f"sandbox.{name} must be > 0, got {getattr(self, name)}")


@dataclass
class RunResult:
    returncode: int | None  # None when killed at the wall clock
    stdout: str
    stderr: str
    duration_s: float
    limit: str | None = None  # which limit stopped the program, in words, or None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.limit is None


@functools.lru_cache(maxsize=1)
def sandbox_mode() -> str:
    """"root" (namespaces + a uid per sandbox) or "userns" (user namespace); raises otherwise."""
    if shutil.which("unshare") is None or shutil.which("setpriv") is None:
        raise SandboxUnavailable("util-linux's `unshare` and `setpriv` are needed to sandbox agent code")
    tried = []
    candidates = ([("root", [])] if os.geteuid() == 0 else []) + [("userns", ["--user", "--map-root-user"])]
    for mode, extra in candidates:
        probe = subprocess.run(["unshare", *extra, "--net", "--mount", "--pid", "--fork", "true"],
                               capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return mode
        tried.append(f"{mode}: {probe.stderr.strip() or probe.returncode}")
    raise SandboxUnavailable("cannot create network/mount/PID namespaces, so agent code will not run "
                             "(enable unprivileged user namespaces or run as root); " + "; ".join(tried))


def python_paths() -> list[str]:
    """What the sandboxed interpreter needs to read: this Python's installation and venv."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    return sorted(p for p in paths if p and not any(p.startswith(d + "/") or p == d for d in SYSTEM_DIRS))


class _Cgroups:
    """A memory and a pids cgroup for one run (v2 or v1), or none where we may not create them."""

    def __init__(self, name: str, limits: SandboxLimits) -> None:
        self.dirs: list[Path] = []
        memory = str(limits.memory_mb * 2**20)
        v2 = Path("/sys/fs/cgroup")
        layouts = ([(v2, {"memory.max": memory, "pids.max": str(limits.max_processes), "memory.swap.max": "0"})]
                   if (v2 / "cgroup.controllers").exists() else
                   [(v2 / "memory", {"memory.limit_in_bytes": memory}),
                    (v2 / "pids", {"pids.max": str(limits.max_processes)})])
        for root, settings in layouts:
            directory = root / name
            try:
                directory.mkdir()
            except OSError:
                continue
            self.dirs.append(directory)
            for key, value in settings.items():
                try:
                    (directory / key).write_text(value)
                except OSError:
                    pass

    @property
    def procs_files(self) -> str:
        return " ".join(str(d / "cgroup.procs") for d in self.dirs)

    def remove(self) -> None:
        for directory in self.dirs:
            for _ in range(50):  # the kernel empties a cgroup a moment after its last process exits
                try:
                    directory.rmdir()
                    break
                except OSError:
                    time.sleep(0.02)


class Sandbox:
    """One working directory; `run` executes a command in it under the limits."""

    def __init__(self, workdir: str | Path, limits: SandboxLimits | None = None) -> None:
        self.mode = sandbox_mode()  # fail closed before anything is written
        self.limits = limits or SandboxLimits()
        self.limits.validate()
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.uid = random.SystemRandom().randrange(200_000, 2_000_000_000) if self.mode == "root" else None
        if self.uid is not None:
            os.chown(self.workdir, self.uid, self.uid)
        os.chmod(self.workdir, 0o700)

    def python(self, script: str, *args: str) -> RunResult:
        """Run a Python file of the working directory with this interpreter (venv included)."""
        return self.run([sys.executable, "-B", script, *args])

    def run(self, argv: list[str]) -> RunResult:
        lim = self.limits
        drop = ["setpriv", "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all"]
        if self.uid is not None:
            drop += [f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups"]
        # RLIMIT_NPROC counts the real uid's processes machine-wide: exact under our own uid, on top
        # of what the caller already runs under a user namespace
        nproc = lim.max_processes + (0 if self.uid is not None else _processes_of(os.getuid()))
        prlimit = ["prlimit", f"--as={lim.memory_mb * 2**20}", f"--cpu={lim.cpu_s}:{lim.cpu_s + 1}",
                   f"--fsize={lim.max_file_mb * 2**20}", f"--nproc={nproc}", "--core=0", "--"]
        unshare = ["unshare", *(["--user", "--map-root-user"] if self.mode == "userns" else []),
                   "--net", "--mount", "--pid", "--fork", "--kill-child"]
        cgroups = _Cgroups(f"agentrl-{os.getpid()}-{random.SystemRandom().getrandbits(48):012x}", lim) \
            if self.mode == "root" else None
        threads = str(lim.threads)
        env = {"PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin", "HOME": INSIDE_WORKDIR,
               "TMPDIR": "/tmp", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg",
               "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
               "AGENTRL_RO_PATHS": "\n".join([*SYSTEM_DIRS, *python_paths()])}
        root = tempfile.mkdtemp(prefix="agentrl-root-")
        command = [*unshare, "sh", "-c", _INNER, "agentrl-sandbox", root, str(self.workdir.resolve()),
                   str(lim.tmp_mb), cgroups.procs_files if cgroups else "", *drop, *prlimit, *argv]
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                    start_new_session=True)
            try:
                returncode = proc.wait(timeout=lim.wall_s)
                limit = None
            except subprocess.TimeoutExpired:
                # unshare dies, --kill-child takes the namespace's first process, the kernel the rest
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                returncode, limit = None, f"wall-clock limit of {lim.wall_s:g} s reached; the program was killed"
            duration = time.perf_counter() - t0
            if cgroups:
                cgroups.remove()
            shutil.rmtree(root, ignore_errors=True)
            stdout, stderr = _tail(out), _tail(err)
        if limit is None:
            limit = _limit_hit(returncode, stderr, lim)
        return RunResult(returncode, stdout, stderr, duration, limit)


def _processes_of(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                pass
    return count


def _tail(handle, max_chars: int = 20_000) -> str:
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    handle.seek(max(0, size - 4 * max_chars))
    return handle.read().decode("utf-8", "replace")[-max_chars:]


def _limit_hit(returncode: int, stderr: str, lim: SandboxLimits) -> str | None:
    """Name the limit behind a failure (sh reports a signal as 128 + its number)."""
    sig = returncode - 128 if returncode > 128 else None
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and "CPU" in stderr):
        return f"CPU time limit of {lim.cpu_s} s reached; the program was killed"
    if sig == signal.SIGXFSZ:
        return f"file size limit of {lim.max_file_mb} MB reached; the program was killed"
    if sig == signal.SIGKILL:
        return f"killed (SIGKILL), most likely by the memory limit of {lim.memory_mb} MB"
    if "MemoryError" in stderr or "Cannot allocate memory" in stderr:
        return f"memory limit of {lim.memory_mb} MB reached (MemoryError)"
    if "Resource temporarily unavailable" in stderr and ("fork" in stderr or "thread" in stderr or "BlockingIOError" in stderr):
        return f"process limit of {lim.max_processes} reached"
    return None
