"""Run a trained policy deterministically, report its mean return, and export it to TorchScript and ONNX.

    python scripts/play.py --checkpoint latest                # the newest run of the default task's experiment
    python scripts/play.py --task Hopper-v5 --algo ppo --checkpoint logs/rsl_rl/hopper_ppo/<run>/model_499.pt
    python scripts/play.py --task Isaac-Cartpole --algo trudi --checkpoint latest --num_envs 64   # with Isaac Lab

The exports land in ``<run dir>/exported/policy.pt`` and ``policy.onnx``; they take concatenated raw observations
(the normaliser is inside) and return environment actions. On the embedded tasks ``exported/obs_layout.yaml`` says
which observation key lands where in that vector; play refuses an environment whose layout differs from the run's
``params/obs_layout.yaml``.
"""

from __future__ import annotations

import argparse
import os

from trudi import cli
from trudi.rsl_rl import OnPolicyRunner
from trudi.tasks import get_task, is_embedded, require_simulator, train_cfg
from trudi.workflow import (
    check_obs_layout,
    evaluate,
    export_policy,
    load_checkpoint,
    merge_agent_cfg,
    resolve_checkpoint,
    save_obs_layout,
    seed_everything,
)


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """Parse flags; remaining ``agent.x=y`` tokens are returned as overrides."""
    parser = cli.script_parser(__doc__)
    parser.add_argument("--episodes", type=int, default=20, help="episodes to average the return over")
    parser.add_argument("--seed", type=int, default=0)
    return cli.parse_with_overrides(parser, argv)


def main(argv: list[str] | None = None) -> dict:
    """Evaluate and export; returns the mean/std return and the export paths."""
    args, overrides = parse_args(argv)
    if not is_embedded(args.task):
        require_simulator(args.task, "play")
        from trudi_isaaclab.workflow import play

        return play(args, overrides)
    task = get_task(args.task)
    agent_cfg = merge_agent_cfg(train_cfg(args.task, args.algo), args.agent_cfg, overrides)
    checkpoint = resolve_checkpoint(
        os.path.join(args.log_root, agent_cfg["experiment_name"]), args.load_run, args.checkpoint
    )
    print(f"[trudi] loading {checkpoint}")
    seed_everything(args.seed)
    env = task.make_env(args.num_envs or task.num_envs, args.seed, args.device)
    # Before the checkpoint loads: a layout with the same size but another order would load and act on wrong inputs.
    check_obs_layout(checkpoint, env.obs_layout, args.task)
    runner = OnPolicyRunner(env, agent_cfg, log_dir=None, device=args.device)
    load_checkpoint(runner, checkpoint, load_cfg={"actor": True}, map_location=args.device)
    policy = runner.get_inference_policy(device=args.device)

    mean_return, std_return, mean_length = evaluate(policy, env, args.episodes)
    print(
        f"[trudi] deterministic policy: mean return {mean_return:.2f} +- {std_return:.2f} over {args.episodes} episodes"
        f" (mean length {mean_length:.0f} steps)"
    )

    export_dir = os.path.join(os.path.dirname(checkpoint), "exported")
    parity = export_policy(runner, policy, env.get_observations(), agent_cfg["obs_groups"]["actor"], export_dir)
    save_obs_layout(export_dir, env.obs_layout)
    print(f"[trudi] exported {export_dir}/policy.pt and policy.onnx; max abs diff vs torch: {parity}")
    env.close()
    return {"mean_return": mean_return, "std_return": std_return, "export_dir": export_dir, "parity": parity}


if __name__ == "__main__":
    cli.run(main)
