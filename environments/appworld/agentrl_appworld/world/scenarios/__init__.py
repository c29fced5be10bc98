"""Task templates by app. Each module lists `TEMPLATES`; the builder makes scenarios from them."""
from __future__ import annotations

import importlib

from ..task import Template

# one module per app (or app pair); each defines TEMPLATES: list[Template]
MODULES = ("simple_note", "todoist", "spotify", "venmo", "phone", "file_system")


def all_templates() -> list[Template]:
    templates: list[Template] = []
    for name in MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            continue
        templates += module.TEMPLATES
    names = [t.name for t in templates]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate template names: {names}")
    return templates
