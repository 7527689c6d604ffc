"""Train TruDi or RSL-RL's PPO with RSL-RL's OnPolicyRunner.

    python scripts/train.py                                   # TruDi on the default embedded task
    python scripts/train.py --algo ppo --task Hopper-v5 --max_iterations 200
    python scripts/train.py --agent_cfg my_agent.yaml agent.algorithm.kl_bound=0.2 agent.actor.num_denoising_steps=4
    python scripts/train.py --resume --load_run 2026-11-24_10-00-00   # continue a run
    python scripts/train.py --task dm_control/walker-walk-v0          # DeepMind Control: pip install -e ".[dmc]"
    python scripts/train.py --task my_package:MyEnv-v0                # imports my_package, which registers MyEnv-v0

With Isaac Lab installed, any other task id runs Isaac Lab's own RSL-RL train flow with the agent key of ``--algo``
(``rsl_rl_trudi_cfg_entry_point`` or the task's own PPO ``rsl_rl_cfg_entry_point``); its other flags pass through:

    python scripts/train.py --task Isaac-Cartpole --algo trudi --num_envs 256 --device cpu --max_iterations 100
    python scripts/train.py --task Isaac-Cartpole --algo trudi --device cpu --checkpoint latest   # resume

Without Isaac Lab this trains the embedded tasks (Gymnasium MuJoCo, the two-mode bandit) and any other continuous
Gymnasium id, which need no GPU. ``Dict`` observations are flattened (keys sorted at every level, depth first) and
the layout is saved as ``params/obs_layout.yaml``, which ``scripts/play.py`` checks. An mjlab task (``Mjlab-...``)
trains with mjlab's own ``train`` entry point on its ``-TruDi`` variant (exts/trudi_mjlab/README.md); given one,
this script names that command.
"""

from __future__ import annotations

import argparse
import os

from trudi import cli
from trudi.rsl_rl import OnPolicyRunner
from trudi.tasks import get_task, is_embedded, isaaclab_installed, require_simulator, train_cfg
from trudi.workflow import (
    check_obs_layout,
    dump_params,
    load_checkpoint,
    merge_agent_cfg,
    new_log_dir,
    resolve_checkpoint,
    seed_everything,
)


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """Parse flags; remaining ``agent.x=y`` tokens are returned as overrides."""
    parser = cli.script_parser(__doc__)
    parser.add_argument("--seed", type=int, default=None, help="overrides agent.seed")
    parser.add_argument("--max_iterations", type=int, default=None, help="overrides agent.max_iterations")
    parser.add_argument("--run_name", default=None, help="suffix of the run directory")
    parser.add_argument("--resume", action="store_true", help="load a checkpoint and continue its iteration count")
    return cli.parse_with_overrides(parser, argv)


def isaaclab_task(argv: list[str] | None) -> tuple[argparse.Namespace, list[str], list[str]] | None:
    """The parsed selection, pass-through flags and overrides when ``--task`` is not embedded; else ``None``."""
    parser = argparse.ArgumentParser(add_help=False)
    cli.add_task_args(parser)
    args, rest = parser.parse_known_args(argv)
    if is_embedded(args.task):
        return None
    require_simulator(args.task, "train")
    overrides = cli.override_tokens(rest)
    return args, [token for token in rest if token not in overrides], overrides


def main(argv: list[str] | None = None) -> str | None:
    """Train and return the run directory (``None`` for Isaac Lab tasks, whose flow names its own)."""
    selection = isaaclab_task(argv)
    if selection is not None:
        from trudi_isaaclab.workflow import train

        train(*selection)
        return None
    args, overrides = parse_args(argv)
    task = get_task(args.task)
    agent_cfg = merge_agent_cfg(train_cfg(args.task, args.algo), args.agent_cfg, overrides)
    if args.seed is not None:
        agent_cfg["seed"] = args.seed
    if args.max_iterations is not None:
        agent_cfg["max_iterations"] = args.max_iterations
    if args.run_name is not None:
        agent_cfg["run_name"] = args.run_name
    agent_cfg["device"] = args.device
    num_envs = args.num_envs or task.num_envs
    isaaclab = "" if isaaclab_installed() else " (Isaac Lab is not installed: embedded tasks only)"
    print(f"[trudi] embedded task '{args.task}': {task.description}{isaaclab}")

    seed_everything(agent_cfg["seed"])
    env = task.make_env(num_envs, agent_cfg["seed"], args.device)
    experiment_dir = os.path.join(args.log_root, agent_cfg["experiment_name"])
    resume_path = resolve_checkpoint(experiment_dir, args.load_run, args.checkpoint) if args.resume else None
    log_dir = new_log_dir(agent_cfg["experiment_name"], agent_cfg.get("run_name", ""), args.log_root)
    # Build and load first, so that a bad config or checkpoint fails before any run directory exists.
    runner = OnPolicyRunner(env, agent_cfg, log_dir=log_dir, device=args.device)
    if resume_path is not None:
        print(f"[trudi] resuming from {resume_path}")
        check_obs_layout(resume_path, env.obs_layout, args.task)
        load_checkpoint(runner, resume_path, map_location=args.device)
    dump_params(log_dir, agent_cfg, env.cfg, env.obs_layout)
    print(f"[trudi] logging to {log_dir}")
    runner.learn(num_learning_iterations=agent_cfg["max_iterations"], init_at_random_ep_len=True)
    env.close()
    return log_dir


if __name__ == "__main__":
    cli.run(main)
