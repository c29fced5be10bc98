"""Algorithm registry: importing this package registers every built-in algorithm."""
from agentrl.algorithms.advantages import ADVANTAGE_ESTIMATORS, advantage_estimator
from agentrl.algorithms.base import ALGORITHMS, Batch, PolicyGradient, Sample, make_algorithm, register_algorithm
from agentrl.algorithms.dyna_grpo import DynaGRPO
from agentrl.algorithms.grpo import GRPO
from agentrl.algorithms.loop import LOOP
from agentrl.algorithms.rloo import RLOO

__all__ = [
    "ADVANTAGE_ESTIMATORS", "ALGORITHMS", "Batch", "DynaGRPO", "GRPO", "LOOP", "PolicyGradient", "RLOO", "Sample",
    "advantage_estimator", "make_algorithm", "register_algorithm",
]
