"""The class paths users name in RSL-RL configs: ``trudi.rsl_rl:TruDi``, ``:DiffusionActor``, ``:QCritic``."""

from trudi.actor import DiffusionActor
from trudi.algorithm import TruDi
from trudi.critic import QCritic
from trudi.runner import OnPolicyRunner

__all__ = ["DiffusionActor", "OnPolicyRunner", "QCritic", "TruDi"]
