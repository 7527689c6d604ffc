"""Vectorized environments implementing RSL-RL's ``VecEnv`` interface.

Simulator packages (Gymnasium, MuJoCo) are imported lazily by :class:`GymVecEnv`, so importing this package does not
require them.
"""

from .bandit import TwoModeBandit
from .gym_vec_env import GymVecEnv
from .observation_layout import ObsLayout

__all__ = ["GymVecEnv", "ObsLayout", "TwoModeBandit"]
