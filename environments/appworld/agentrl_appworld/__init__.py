"""AppWorld for agentrl (registered as `appworld`): AppWorld's real engine in its own venv,
behind env servers on 127.0.0.1; the trainer talks to them over HTTP.

`agentrl_appworld.world` runs inside AppWorld's venv (it imports `appworld`, pydantic 1) and
builds an offline world; everything else runs in the trainer's venv and never imports
`appworld`. So this module imports nothing eagerly: the AppWorld venv loads it too.
"""
from __future__ import annotations

from typing import Any

_EXPORTS = {
    "AppWorldConfig": "agentrl_appworld.config",
    "AppWorldEnv": "agentrl_appworld.env",
    "ServerPool": "agentrl_appworld.servers",
    "extract_code": "agentrl_appworld.prompt",
    "tgc_sgc": "agentrl_appworld.metrics",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)


__all__ = sorted(_EXPORTS)
