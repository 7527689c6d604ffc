"""Mode shares on TwoModeBandit: TruDi vs RSL-RL PPO, same seeds, same runner.

    python benchmarks/multimodality.py --seeds 0 1 2 --iterations 300
    python benchmarks/multimodality.py --variant alpha0.2 agent.algorithm.learn_entropy_coef=false \
        agent.algorithm.init_entropy_coef=0.2                         # and TruDi with these overrides

Writes docs/results/multimodality.json (then the pages built from it): per algorithm and seed, the share of
stochastic (SDE for TruDi, Gaussian for PPO) action samples within 0.2 of each of the two equally good modes (-0.6
and +0.6), and the behaviour entropy: the entropy of the distribution over the two modes among the samples that
reached one, divided by log 2 (0 = collapsed to one mode, 1 = both modes equally used).
"""

from __future__ import annotations

import argparse
import math
from datetime import date

import torch
from report import write_pages
from results import cpu_name, write_json

from trudi.rsl_rl import OnPolicyRunner
from trudi.tasks import get_task, train_cfg
from trudi.workflow import merge_agent_cfg, seed_everything

NUM_ENVS = 256
"""Bandit envs per iteration."""


def mode_shares_after_training(
    algo: str, seed: int, iterations: int, num_samples: int = 4096, overrides: list[str] | None = None
) -> dict:
    """Train ``algo`` on TwoModeBandit and return the shares of stochastic samples near each mode.

    ``overrides`` are ``agent.key=value`` strings, as scripts/train.py takes them.
    """
    seed_everything(seed)
    env = get_task("TwoModeBandit").make_env(NUM_ENVS, seed, "cpu")
    runner = OnPolicyRunner(env, merge_agent_cfg(train_cfg("TwoModeBandit", algo), None, overrides), log_dir=None)
    runner.learn(iterations)
    policy = runner.get_inference_policy()
    obs = env.get_observations()
    with torch.no_grad():
        samples = torch.cat([policy(obs, stochastic_output=True) for _ in range(num_samples // env.num_envs)])
    shares = env.mode_shares(samples)
    return {
        "algo": algo,
        "overrides": overrides or [],
        "seed": seed,
        "iterations": iterations,
        "share_mode_neg": shares[0],
        "share_mode_pos": shares[1],
        "share_near_a_mode": shares[0] + shares[1],
        "behaviour_entropy": behaviour_entropy(shares),
        "mean_reward": env.reward(samples).mean().item(),
    }


def behaviour_entropy(shares: tuple[float, ...]) -> float:
    """Entropy of the distribution over discovered modes, normalised to [0, 1] (0 = collapsed)."""
    total = sum(shares)
    if total == 0.0:
        return 0.0
    probs = [s / total for s in shares if s > 0.0]
    return max(0.0, -sum(p * math.log(p) for p in probs) / math.log(len(shares)))


def main() -> None:
    """Run the sweep and write the results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--algos", nargs="+", default=["trudi", "ppo"])
    parser.add_argument(
        "--variant",
        nargs="+",
        action="append",
        default=[],
        metavar="LABEL [agent.k=v ...]",
        help="TruDi as trudi[LABEL]",
    )
    args = parser.parse_args()
    rows = [mode_shares_after_training(a, s, args.iterations) for a in args.algos for s in args.seeds]
    for label, *overrides in args.variant:
        for seed in args.seeds:
            rows.append(mode_shares_after_training("trudi", seed, args.iterations, overrides=overrides))
            rows[-1]["algo"] = f"trudi[{label}]"
    results = {"date": str(date.today()), "device": cpu_name(), "num_envs": NUM_ENVS, "rows": rows}
    write_json("multimodality.json", results)
    write_pages()


if __name__ == "__main__":
    main()
