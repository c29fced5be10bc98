"""ML-engineering sandboxes for agentrl (registered as `mle`): scikit-learn's bundled datasets
and user task folders, a namespace sandbox, instrumented partial-credit rewards."""
from .actions import Action, parse_action
from .config import MLEConfig, expert_program
from .env import MLEEnv
from .instrument import MILESTONES, LMInstrumenter, StaticInstrumenter, reached_milestones
from .reward import RewardConfig, partial_credit
from .sandbox import RunResult, Sandbox, SandboxLimits, SandboxUnavailable, sandbox_mode
from .tasks import BUILTIN, Grade, MLTask, builtin_task, folder_task, grade

__all__ = [
    "Action", "BUILTIN", "Grade", "LMInstrumenter", "MILESTONES", "MLEConfig", "MLEEnv", "MLTask",
    "RewardConfig", "RunResult", "Sandbox", "SandboxLimits", "SandboxUnavailable", "StaticInstrumenter",
    "builtin_task", "expert_program", "folder_task", "grade", "parse_action", "partial_credit",
    "reached_milestones", "sandbox_mode",
]
