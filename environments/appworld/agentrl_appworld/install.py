"""Set up AppWorld beside the trainer: its own venv, `appworld install`, and an offline world.

    python -m agentrl_appworld.install [--home DIR] [--scenarios 4] [--seed 0]

AppWorld pins pydantic<2, which cannot share a process with vLLM/transformers, so it gets
its own venv under `home` (default: `<this venv>/appworld`, or $AGENTRL_APPWORLD_HOME):

    home/venv      AppWorld 0.1.3.post1 and its pinned dependencies
    home/cache     APPWORLD_CACHE (what `appworld install` unpacks besides the package)
    home/world     APPWORLD_ROOT of the built world (data/: api docs, base DBs, tasks, datasets)

Each step is skipped when already done, so running it again is cheap.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import venv
from pathlib import Path

# install in ONE pip call: a separate `openapi-spec-validator` upgrade pulls pydantic 2 and breaks appworld
APPWORLD_REQUIREMENTS = ["appworld==0.1.3.post1", "openapi-spec-validator==0.7.2", "pydantic==1.10.27"]


def default_home() -> Path:
    return Path(os.environ.get("AGENTRL_APPWORLD_HOME") or Path(sys.prefix) / "appworld")


def venv_python(home: Path) -> Path:
    return home / "venv" / "bin" / "python"


def world_root(home: Path) -> Path:
    return home / "world"


def package_parent() -> str:
    """The directory holding `agentrl_appworld`, put on the AppWorld venv's PYTHONPATH."""
    return str(Path(__file__).resolve().parent.parent)


def appworld_env(home: Path, root: Path) -> dict[str, str]:
    return dict(os.environ, APPWORLD_ROOT=str(root), APPWORLD_CACHE=str(home / "cache"), PYTHONPATH=package_parent())


def install(home: Path, scenarios: int = 4, seed: int = 0) -> Path:
    python = venv_python(home)
    if not (home / "venv" / ".installed").exists():
        print(f"[appworld] creating its venv at {home / 'venv'}", flush=True)
        venv.create(home / "venv", with_pip=True, clear=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *APPWORLD_REQUIREMENTS], check=True)
        (home / "venv" / ".installed").touch()
    root = world_root(home)
    root.mkdir(parents=True, exist_ok=True)
    env = appworld_env(home, root)
    if not (home / "cache" / ".installed").exists():
        subprocess.run([str(home / "venv" / "bin" / "appworld"), "install"], check=True, env=env, cwd=root,
                       stdout=subprocess.DEVNULL)
        (home / "cache").mkdir(exist_ok=True)
        (home / "cache" / ".installed").touch()
    subprocess.run([str(python), "-m", "agentrl_appworld.world.build", "--root", str(root), "--scenarios",
                    str(scenarios), "--seed", str(seed)], check=True, env=env, cwd=root,
                   stdout=None if os.environ.get("AGENTRL_VERBOSE") else subprocess.DEVNULL)
    print(f"[appworld] ready: python {python}, world {root}", flush=True)
    return home


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentrl_appworld.install", description=__doc__.split("\n")[0])
    parser.add_argument("--home", default=None, help="where the venv and world go (default: %(default)s -> "
                        f"{default_home()})")
    parser.add_argument("--scenarios", type=int, default=4, help="scenarios per task template (3 tasks each)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    install(Path(args.home) if args.home else default_home(), args.scenarios, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
