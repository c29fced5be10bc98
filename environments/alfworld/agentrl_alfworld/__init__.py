"""ALFWorld for agentrl (registered as `alfworld`): the real TextWorld/ALFWorld engine on real
games ($ALFWORLD_DATA) or on games generated offline from what the `alfworld` package ships."""
from .config import AlfWorldConfig
from .data import ExpertPlans, find_games
from .env import AlfWorldEnv, parse_command
from .generator import find_game, generate_game, sample_task
from .problem import TASK_TYPES

__all__ = [
    "TASK_TYPES",
    "AlfWorldConfig",
    "AlfWorldEnv",
    "ExpertPlans",
    "find_game",
    "find_games",
    "generate_game",
    "parse_command",
    "sample_task",
]
