"""Weight updates as files: how vLLM (in-process or a server) picks up the learner's weights.

vLLM loads LoRA adapters and full checkpoints from disk, so each learner update is written
to `<sync_dir>/<kind>-v<version>`; only the newest and the one being replaced are kept.
For servers on other hosts `sync_dir` must be a filesystem they see at the same path.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from agentrl.engines.base import WeightUpdate


class WeightFiles:
    def __init__(self, sync_dir: str | None = None) -> None:
        self._own = sync_dir is None
        self.root = Path(sync_dir or tempfile.mkdtemp(prefix="agentrl-weights-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.current: dict[str, Path] = {}  # route -> the directory being served

    def write(self, update: WeightUpdate) -> Path:
        """Write `update`; returns its directory (the previous one stays until `commit`)."""
        route = f"{update.route}-" if update.route else ""
        path = self.root / f"{update.kind}-{route}v{update.version}"
        if path.exists():  # the same version re-sent (a resume): rewrite it
            shutil.rmtree(path)
        return update.save(path)

    def commit(self, path: Path, route: str = "", full: bool = False) -> None:
        """`path` is now being served for `route`: drop the previous update's files for it.
        Full weights serve every route, so they replace every route's files."""
        if full:
            replaced, self.current = list(self.current.values()), {}
        else:
            replaced = [self.current[route]] if route in self.current else []
        for old in replaced:
            if old != path:
                shutil.rmtree(old, ignore_errors=True)
        self.current[route] = path

    def close(self) -> None:
        if self._own:
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            for path in self.current.values():
                shutil.rmtree(path, ignore_errors=True)


def adapter_name(version: int, route: str = "") -> str:
    return f"policy-{route}-v{version}" if route else f"policy-v{version}"


def lora_rank_slot(rank: int) -> int:
    """vLLM's `max_lora_rank` takes a few fixed values: the smallest one that fits `rank`."""
    for slot in (8, 16, 32, 64, 128, 256, 320, 512):
        if rank <= slot:
            return slot
    raise ValueError(f"LoRA rank {rank} is above vLLM's largest max_lora_rank (512)")
