from agentrl.engines.base import Completion, Engine, SamplingParams, WeightUpdate

__all__ = ["Completion", "Engine", "SamplingParams", "WeightUpdate"]
