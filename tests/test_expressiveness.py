"""Multimodality measured, not assumed: TruDi and RSL-RL PPO on a bandit with two equally good action modes.

Per-seed shares at the current defaults are in docs/results/multimodality.md (benchmarks/multimodality.py). With
the default entropy target both algorithms settle on one mode per seed; what holds over all seeds is asserted here.
Both are 300-iteration learning runs (about 3 minutes together on the 2-core CPU), so they sit in the slow tier
(``pytest -m slow``) with the other learning checks.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
from multimodality import mode_shares_after_training  # noqa: E402

SEEDS = (0, 1, 2)
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("seed", SEEDS)
def test_trudi_samples_land_near_a_mode(seed):
    trudi = mode_shares_after_training("trudi", seed, iterations=300)
    print(trudi)
    # A policy spread evenly over [-1, 1] would put 40% of its samples within 0.2 of a mode. Measured: 92-94% on every
    # seed with the 2026-11-24 defaults; 89.4% on seed 1 with the 2026-12-01 ones (entropy target counted from the
    # initial policy, faster duals); 79-83% since init_std 0.5 (2026-12-06), still all of it around one mode.
    assert trudi["share_near_a_mode"] >= 0.7


@pytest.mark.parametrize("seed", SEEDS)
def test_ppo_baseline_on_the_same_seeds_finds_a_mode(seed):
    ppo = mode_shares_after_training("ppo", seed, iterations=300)
    print(ppo)
    assert ppo["share_near_a_mode"] >= 0.9
