"""Sokoban for agentrl: reverse-play level generator, move-optimal solver,
Boxoban/XSB loaders and a text environment (registered as `sokoban`)."""
from .actions import ACTIONS, parse_action
from .config import SokobanConfig, canonical_text, split_of
from .env import SokobanEnv
from .generator import generate_level
from .levels import Level, LevelError, crop_border, parse_level, play, render_level
from .loaders import load_boxoban, load_levels, load_xsb
from .solver import solve, solve_bfs

__all__ = [
    "ACTIONS",
    "Level",
    "LevelError",
    "SokobanConfig",
    "SokobanEnv",
    "canonical_text",
    "crop_border",
    "generate_level",
    "load_boxoban",
    "load_levels",
    "load_xsb",
    "parse_action",
    "parse_level",
    "play",
    "render_level",
    "solve",
    "solve_bfs",
    "split_of",
]
