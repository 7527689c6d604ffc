"""Cost per iteration, TruDi vs RSL-RL PPO, in one run: rollout, returns and update time, env-steps/s, memory.

    python benchmarks/speed.py --task Hopper-v5 --iterations 5                       # embedded Gymnasium task
    python benchmarks/speed.py --task synthetic --num-envs 256 --obs-dim 48 --action-dim 12
    python benchmarks/speed.py --task Isaac-Ant --num-envs 256                       # in the Isaac Lab venv
    python benchmarks/speed.py --task synthetic --trudi agent.algorithm.kl_samples=1 --note "K=1"  # a TruDi option
    python benchmarks/speed.py --task synthetic --num-envs 4096 --memory      # peak memory, rollout + update epoch
    python benchmarks/speed.py --task synthetic --trudi-only --against /tmp/old-checkout --note "616ac70"
                                      # TruDi at this commit and at another checkout's source, in one run

Both algorithms train through the same ``OnPolicyRunner`` on the same environment, with the same number of envs
and steps per env (the task's TruDi rollout length). The algorithm's ``act``/``process_env_step``,
``compute_returns`` and ``update`` are wrapped with timers (the environment step counts as rollout), and the first
iteration is discarded as warm-up. ``synthetic`` is an environment that returns random observations of the
given size at no cost: it isolates the algorithm. The storage's size is counted from its tensors. Results are
appended to ``docs/results/speed.json`` (``--memory`` results to ``docs/results/memory.json``), and
``benchmarks/report.py`` rebuilds ``docs/results/speed.md`` and ``docs/benchmarks.md`` from them; the ``--note``
says what the run measured, in words. ``--against DIR`` first measures the TruDi of
another checkout (its ``source/`` first on ``PYTHONPATH``, in a child process running this script, with the same
arguments) and then this one, and records both rows with the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import date

import torch
from report import write_pages
from results import RESULTS_DIR
from rsl_rl.env import VecEnv
from tensordict import TensorDict

from trudi.checkpoint import atomic_write_text
from trudi.rsl_rl import OnPolicyRunner
from trudi.workflow import merge_agent_cfg


class SyntheticEnv(VecEnv):
    """Random observations and rewards of a fixed size, episodes of ``episode_length`` steps: no simulation cost."""

    def __init__(self, num_envs: int, obs_dim: int, action_dim: int, device: str, episode_length: int = 500) -> None:
        self.num_envs, self.num_actions, self.device = num_envs, action_dim, device
        self.obs_dim, self.max_episode_length = obs_dim, episode_length
        self.episode_length_buf = torch.zeros(num_envs, dtype=torch.long, device=device)
        self.cfg = {"task": "synthetic", "obs_dim": obs_dim, "action_dim": action_dim}

    def get_observations(self) -> TensorDict:
        """Fresh random observations in the group ``policy``."""
        obs = torch.randn(self.num_envs, self.obs_dim, device=self.device)
        return TensorDict({"policy": obs}, batch_size=[self.num_envs], device=self.device)

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
        """Random observations and rewards; episodes time out after ``episode_length`` steps."""
        self.episode_length_buf += 1
        time_outs = self.episode_length_buf >= self.max_episode_length
        self.episode_length_buf[time_outs] = 0
        rewards = torch.randn(self.num_envs, device=self.device)
        return self.get_observations(), rewards, time_outs.long(), {"time_outs": time_outs}


def _timed(obj: object, name: str, totals: dict[str, float], key: str, sync) -> None:
    """Wrap ``obj.name`` so its wall time (device-synchronised) accumulates in ``totals[key]``."""
    method = getattr(obj, name)

    def wrapper(*args, **kwargs):
        sync()
        start = time.perf_counter()
        result = method(*args, **kwargs)
        sync()
        totals[key] += time.perf_counter() - start
        return result

    setattr(obj, name, wrapper)


def make_env(args: argparse.Namespace, stack: contextlib.ExitStack):
    """The environment and the TruDi/PPO configs for ``args.task``; ``stack`` closes the environment."""
    if args.task == "synthetic":
        from trudi.tasks import ppo_train_cfg, trudi_train_cfg

        env = SyntheticEnv(args.num_envs, args.obs_dim, args.action_dim, args.device)
        critic = {"value_min": -10.0, "value_max": 10.0}
        return env, trudi_train_cfg("synthetic", num_steps_per_env=24, critic=critic), ppo_train_cfg("synthetic", 24)
    if args.task.startswith("Isaac"):
        from trudi_isaaclab.workflow import isaaclab_env, resolve_agent_cfg

        _, ppo_cfg = resolve_agent_cfg(args.task, "ppo", [f"agent.device={args.device}"])
        env, trudi_cfg = stack.enter_context(isaaclab_env(args.task, "trudi", [], args.device, args.num_envs))
        return env, trudi_cfg.to_dict(), ppo_cfg.to_dict()
    from trudi.tasks import get_task, train_cfg

    task = get_task(args.task)
    env = task.make_env(args.num_envs or task.num_envs, 0, args.device)
    stack.callback(env.close)
    return env, train_cfg(args.task, "trudi"), train_cfg(args.task, "ppo")


def measure(env: VecEnv, cfg: dict, iterations: int, device: str) -> dict:
    """Train ``iterations`` + 1 iterations and return the per-iteration means (first iteration excluded)."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    runner = OnPolicyRunner(env, cfg, log_dir=None, device=device)
    totals = {"rollout": 0.0, "returns": 0.0, "update": 0.0}
    runner.learn(1)  # warm-up: first-call allocations, lazy initialisation, auto critic support
    for name, key in (("act", "rollout"), ("process_env_step", "rollout"), ("compute_returns", "returns")):
        _timed(runner.alg, name, totals, key, sync)
    _timed(runner.alg, "update", totals, "update", sync)
    _timed(env, "step", totals, "rollout", sync)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    runner.learn(iterations)  # RSL-RL runs `iterations` more iterations after the first call
    wall = time.perf_counter() - start
    steps = iterations * env.num_envs * cfg["num_steps_per_env"]
    storage = runner.alg.storage
    storage_bytes = sum(t.numel() * t.element_size() for t in vars(storage).values() if isinstance(t, torch.Tensor))
    for value in vars(storage).values():
        if isinstance(value, TensorDict):
            storage_bytes += sum(t.numel() * t.element_size() for t in value.values())
    row = {k: v / iterations for k, v in totals.items()} | {"iteration": wall / iterations, "steps_per_s": steps / wall}
    row["storage_mb"] = storage_bytes / 2**20
    if device.startswith("cuda"):
        row["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return row


def measure_memory(env: VecEnv, cfg: dict, device: str) -> dict:
    """Peak memory of one rollout and one update epoch (every mini-batch once): GPU allocator peak or process RSS.

    One epoch reaches the same peak as several: each mini-batch's graph is freed before the next. On the CPU the
    number is the process's peak resident set, which includes the interpreter and the libraries (``baseline_mb``,
    measured before the algorithm is built).
    """
    cuda = device.startswith("cuda")

    def peak_mb() -> float:
        if cuda:
            return torch.cuda.max_memory_allocated() / 2**20
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    baseline = peak_mb()
    cfg = {**cfg, "algorithm": {**cfg["algorithm"], "num_learning_epochs": 1}}
    runner = OnPolicyRunner(env, cfg, log_dir=None, device=device)
    alg, obs = runner.alg, env.get_observations().to(device)
    with torch.inference_mode():
        for _ in range(cfg["num_steps_per_env"]):
            obs, rewards, dones, extras = env.step(alg.act(obs))
            alg.process_env_step(obs, rewards, dones, extras)
        alg.compute_returns(obs)
    after_rollout = peak_mb()
    alg.update()
    return {"baseline_mb": baseline, "after_rollout_mb": after_rollout, "after_update_mb": peak_mb()}


def main() -> None:
    """Measure TruDi and PPO on one task and update the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="Hopper-v5")
    parser.add_argument("--num-envs", type=int, default=None)
    parser.add_argument("--obs-dim", type=int, default=48, help="synthetic task only")
    parser.add_argument("--action-dim", type=int, default=12, help="synthetic task only")
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--note", default="", help="what changed, for before/after rows")
    parser.add_argument("--memory", action="store_true", help="only the peak memory of TruDi's rollout and update")
    parser.add_argument("--trudi", nargs="*", default=[], metavar="agent.KEY=VALUE", help="TruDi config overrides")
    parser.add_argument("--trudi-only", action="store_true", help="measure TruDi only (no PPO row, no ratio)")
    parser.add_argument("--against", default=None, metavar="DIR", help="also measure the checkout at DIR first")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    other = _measure_other_checkout(args) if args.against else None
    if args.task == "synthetic" and args.num_envs is None:
        args.num_envs = 256

    with contextlib.ExitStack() as stack:
        env, trudi_cfg, ppo_cfg = make_env(args, stack)
        measure_and_record(args, env, trudi_cfg, ppo_cfg, other)


def measure_and_record(args: argparse.Namespace, env: VecEnv, trudi_cfg: dict, ppo_cfg: dict, other: dict | None):
    """Measure (memory, or TruDi then PPO) on ``env`` and append the entry to the committed tables."""
    trudi_cfg = merge_agent_cfg(trudi_cfg, None, args.trudi)
    ppo_cfg["num_steps_per_env"] = trudi_cfg["num_steps_per_env"]  # same batch for both
    if args.memory:
        memory = measure_memory(env, trudi_cfg, args.device)
        memory |= {"date": str(date.today()), "device": _device_name(args.device), "task": args.task}
        memory |= {"num_envs": env.num_envs, "num_steps_per_env": trudi_cfg["num_steps_per_env"], "note": args.note}
        _append_entry("memory.json", memory)
        print(json.dumps(memory, indent=1))
        write_pages()
        return
    torch.manual_seed(0)
    trudi = measure(env, trudi_cfg, args.iterations, args.device)
    if args.child:
        print("SPEED_ROW " + json.dumps(trudi))
        return
    ppo = None if args.trudi_only else measure(env, ppo_cfg, args.iterations, args.device)
    entry = {
        "date": str(date.today()),
        "device": _device_name(args.device),
        "task": args.task,
        "num_envs": env.num_envs,
        "num_steps_per_env": trudi_cfg["num_steps_per_env"],
        "trudi": trudi,
        "ppo": ppo,
        "ratio_time_per_step": ppo["steps_per_s"] / trudi["steps_per_s"] if ppo else None,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "note": args.note,
        "trudi_overrides": args.trudi,
    }
    if other is not None:
        entry["against"] = {"source": os.path.abspath(args.against), "trudi": other}
        entry["speedup"] = {key: other[key] / trudi[key] for key in ("rollout", "update", "iteration")}
        print(json.dumps(entry["speedup"]))
    _append_entry("speed.json", entry)
    print(json.dumps(entry, indent=1))
    write_pages()


def _measure_other_checkout(args: argparse.Namespace) -> dict:
    """TruDi's row measured on another checkout's ``source/``, by this script in a child process."""
    command = [sys.executable, os.path.abspath(__file__), "--child", "--task", args.task, "--device", args.device]
    command += ["--obs-dim", str(args.obs_dim), "--action-dim", str(args.action_dim)]
    command += ["--iterations", str(args.iterations)] + (["--num-envs", str(args.num_envs)] if args.num_envs else [])
    command += ["--trudi", *args.trudi] if args.trudi else []
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([os.path.join(args.against, "source"), os.environ.get("PYTHONPATH", "")])
    )
    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    rows = [line for line in output.splitlines() if line.startswith("SPEED_ROW ")]
    if not rows:
        raise SystemExit(f"speed.py: the run against {args.against} printed no result:\n{output[-2000:]}")
    return json.loads(rows[-1].removeprefix("SPEED_ROW "))


def _append_entry(name: str, entry: dict) -> None:
    """Append ``entry`` to the JSON list ``RESULTS_DIR/name`` (rewritten atomically)."""
    path = os.path.join(RESULTS_DIR, name)
    entries = []
    if os.path.isfile(path):
        with open(path) as file:
            entries = json.load(file)
    entries.append(entry)
    atomic_write_text(path, json.dumps(entries, indent=1))


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    return f"CPU ({os.cpu_count()} cores, {platform.machine()}, {torch.get_num_threads()} torch threads)"


if __name__ == "__main__":
    main()
