"""Numerical check on trained policies: the trajectory KL bounds the KL of the action marginals.

    python benchmarks/kl_bound.py --run logs/rsl_rl/inverted_pendulum_trudi/<run>

Takes consecutive checkpoints of one TruDi run on a task with a 1-D action (InvertedPendulum-v5), and for states
visited by the newer policy computes (a) the trajectory KL between the two policies' denoising chains, as the
update's trust region measures it (closed form per step, averaged over 256 old-policy chains per state), and (b) a
histogram estimate of the KL between their action marginals at the same state (20,000 SDE samples each). Writes
``docs/results/kl_bound.json``, then the pages built from it (``benchmarks/report.py``).
"""

from __future__ import annotations

import argparse
import os
import re
from datetime import date

import torch
from report import write_pages
from results import cpu_name, write_json

from trudi.rsl_rl import OnPolicyRunner
from trudi.tasks import get_task, train_cfg
from trudi.trust_region import trajectory_kl


def load_actor(task: str, checkpoint: str, num_envs: int):
    """The actor of a checkpoint, in eval mode, and ``num_envs`` environments to visit states with."""
    env = get_task(task).make_env(num_envs, 0, "cpu")
    runner = OnPolicyRunner(env, train_cfg(task, "trudi"), log_dir=None, device="cpu")
    runner.load(checkpoint, load_cfg={"actor": True}, map_location="cpu")
    runner.alg.actor.eval()
    return runner.alg.actor, env


@torch.no_grad()
def marginal_kl(old, new, state: torch.Tensor, samples: int, bins: int = 200) -> float:
    """Histogram KL(old || new) of the pre-tanh final latent (tanh is a bijection, so this is the action KL)."""
    states = state.expand(samples, -1)
    x_old = old.sde_chain(states)[0][:, 0]
    x_new = new.sde_chain(states)[0][:, 0]
    low = min(x_old.min(), x_new.min()).item()
    high = max(x_old.max(), x_new.max()).item()
    edges = torch.linspace(low, high, bins + 1)
    p = torch.histogram(x_old, edges).hist + 0.5  # add-half smoothing keeps empty bins finite
    q = torch.histogram(x_new, edges).hist + 0.5
    p, q = p / p.sum(), q / q.sum()
    return float((p * (p / q).log()).sum())


def main() -> None:
    """Compare consecutive checkpoints of the run on states the newer policy visits."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run directory with model_<it>.pt checkpoints")
    parser.add_argument("--task", default="InvertedPendulum-v5")
    parser.add_argument("--states", type=int, default=16)
    parser.add_argument("--samples", type=int, default=20_000)
    args = parser.parse_args()
    torch.manual_seed(0)

    names = sorted((f for f in os.listdir(args.run) if re.fullmatch(r"model_\d+\.pt", f)), key=lambda f: int(f[6:-3]))
    rows = []
    for old_name, new_name in zip(names, names[1:], strict=False):
        old, env = load_actor(args.task, os.path.join(args.run, old_name), args.states)
        new, _ = load_actor(args.task, os.path.join(args.run, new_name), args.states)
        obs = env.get_observations()
        for _ in range(50):  # visit a few states with the newer (deterministic) policy
            obs = env.step(new(obs))[0]
        # Both chains read the same normalised state (in an update both actors share the frozen normaliser).
        states = old.get_latent(obs)
        with torch.no_grad():
            traj = [trajectory_kl(new, old, s.unsqueeze(0), num_samples=256)[0].item() for s in states]
        marg = [marginal_kl(old, new, s.unsqueeze(0), args.samples) for s in states]
        rows.append(
            {
                "old": old_name,
                "new": new_name,
                "trajectory_kl": traj,
                "marginal_kl": marg,
                "bound_holds": sum(t >= m for t, m in zip(traj, marg, strict=True)),
                "states": len(traj),
            }
        )
        print(f"{old_name} -> {new_name}: holds at {rows[-1]['bound_holds']}/{len(traj)} states")

    results = {
        "date": str(date.today()),
        "device": cpu_name(),
        "task": args.task,
        "samples": args.samples,
        "run": args.run,
        "rows": rows,
    }
    write_json("kl_bound.json", results)
    write_pages()


if __name__ == "__main__":
    main()
