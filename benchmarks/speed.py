"""Cost of TruDi against RSL-RL PPO, like for like: seconds, matrix-multiply FLOPs and operator dispatches.

    python benchmarks/speed.py --task synthetic --note "alone"      # 256 envs x 24 steps, obs 48, act 12
    python benchmarks/speed.py --task Isaac-Ant --num-envs 256      # in the Isaac Lab venv; likewise Isaac-Humanoid
    python benchmarks/speed.py --task Hopper-v5                     # an embedded Gymnasium task
    python benchmarks/speed.py --task synthetic --trudi agent.algorithm.kl_samples=4 --note "K=4"  # a TruDi option
    python benchmarks/speed.py --task synthetic --num-envs 4096 --memory   # TruDi's peak memory, rollout + update epoch

Each algorithm runs at the sizes a user would run it. ``synthetic`` (random observations at no cost, which isolates
the algorithms) gives TruDi its defaults and PPO Isaac Lab's locomotion networks: [512, 256, 128] ELU for actor and
critic, 5 epochs x 4 mini-batches. An Isaac Lab task gives each algorithm its registered config; an embedded task,
its train config. Both train through the same ``OnPolicyRunner`` on the same environment with the same number of
envs and steps per env (TruDi's rollout length).

Per algorithm: one warm-up iteration (first-call allocations, compilation), ``--iterations`` timed iterations, then
one counted iteration. Timers and counters wrap the algorithm's own methods, the code unchanged: ``rollout`` is
``act``, ``process_env_step`` and ``compute_returns``; ``env`` is the environment's ``step``; ``update`` is
``update``. The counted iteration runs under :class:`Counters`, a ``TorchDispatchMode`` that counts every aten operator
dispatch and the matrix multiplies' FLOPs (``FlopCounterMode``'s formulas); neither depends on the machine's load.
Beside them, :func:`structure` gives the network passes per sample that each algorithm's code and options require,
and their FLOPs from the networks' shapes.

Each run replaces the entry of the same task, env count, TruDi overrides and device in ``docs/results/speed.json``
(``--memory``: ``docs/results/memory.json``), and ``benchmarks/report.py`` rebuilds ``docs/results/speed.md`` and
``docs/benchmarks.md`` from them. ``--note`` says, in words, what else ran on the machine (the 1-minute load average
before the run is recorded with it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from unittest import mock

import torch
import torch.nn as nn
from report import write_pages
from results import RESULTS_DIR, cpu_name
from rsl_rl.algorithms import PPO
from rsl_rl.env import VecEnv
from tensordict import TensorDict
from torch._C import DispatchKey
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from trudi.algorithm import TruDi
from trudi.checkpoint import atomic_write_text
from trudi.rsl_rl import OnPolicyRunner
from trudi.workflow import merge_agent_cfg

LOCOMOTION_WIDTHS = [512, 256, 128]
"""Hidden widths of the actor and the critic in Isaac Lab's locomotion PPO configs (ANYmal-D rough and others)."""

PHASES = ("rollout", "env", "update")
"""What an iteration's seconds are split into; FLOPs and dispatches are kept for the algorithm's two."""


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


def synthetic_cfgs(num_steps_per_env: int, ppo_widths: list[int]) -> tuple[dict, dict]:
    """TruDi's train config at its defaults and PPO's with ``ppo_widths`` (ELU) for actor and critic."""
    from trudi.tasks import ppo_train_cfg, trudi_train_cfg

    ppo = ppo_train_cfg("synthetic", num_steps_per_env)
    for model in ("actor", "critic"):
        ppo[model]["hidden_dims"] = list(ppo_widths)
    return trudi_train_cfg("synthetic", num_steps_per_env), ppo


def make_env(args: argparse.Namespace, stack: contextlib.ExitStack) -> tuple[VecEnv, dict, dict]:
    """The environment and the TruDi/PPO configs for ``args.task``; ``stack`` closes the environment."""
    if args.task == "synthetic":
        env = SyntheticEnv(args.num_envs, args.obs_dim, args.action_dim, args.device)
        return env, *synthetic_cfgs(24, LOCOMOTION_WIDTHS)
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


# ---------------------------------------------------------------------------------------------------------------------
# measuring


class Counters(TorchDispatchMode):
    """Counts the aten operators that reach the dispatcher and the FLOPs of the matrix multiplies among them.

    FLOPs: the formulas of ``torch.utils.flop_counter`` that ``FlopCounterMode`` applies (``2 m n k`` per product, the
    bias of ``addmm`` excluded), backward passes included. As in ``FlopCounterMode``, an operator without a formula
    runs as its decomposition, where it has one, so that the products inside count (``aten.linear`` arrives whole
    under ``inference_mode``); each operator the code calls is one dispatch, the operators of its decomposition are
    not. ``FlopCounterMode`` itself fails on TruDi's rollout (torch 2.13): its module tracker cannot hook the slice of
    a parameter that the control network takes under ``inference_mode``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0
        self.dispatches = 0
        self._decomposing = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.dispatches += self._decomposing == 0
        formula = flop_registry.get(func.overloadpacket)
        if formula is not None:
            out = func(*args, **kwargs)
            self.flops += formula(*args, **kwargs, out_val=out)
            return out
        if func.has_kernel_for_dispatch_key(DispatchKey.CompositeImplicitAutograd):
            self._decomposing += 1
            try:
                with self:
                    return func.decompose(*args, **kwargs)
            finally:
                self._decomposing -= 1
        return func(*args, **kwargs)

    def totals(self) -> tuple[int, int]:
        """The FLOPs and the dispatches counted so far."""
        return self.flops, self.dispatches


@dataclass
class Meter:
    """Per phase: seconds, and while :attr:`counter` is set, the dispatches and matmul FLOPs of the wrapped calls."""

    sync: Callable[[], None]
    """Waits for the device, so that a phase's seconds include its kernels."""
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    flops: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PHASES, 0))
    dispatches: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PHASES, 0))
    counter: Counters | None = None

    def wrap(self, stack: contextlib.ExitStack, obj: object, name: str, phase: str) -> None:
        """Replace ``obj.name`` by a wrapper that books its calls to ``phase`` until ``stack`` closes."""
        method = getattr(obj, name)

        def wrapper(*args, **kwargs):
            counter = self.counter
            flops, dispatches = counter.totals() if counter else (0, 0)
            self.sync()
            start = time.perf_counter()
            result = method(*args, **kwargs)
            self.sync()
            self.seconds[phase] += time.perf_counter() - start
            if counter is not None:
                flops_after, dispatches_after = counter.totals()
                self.flops[phase] += flops_after - flops
                self.dispatches[phase] += dispatches_after - dispatches
            return result

        stack.enter_context(mock.patch.object(obj, name, wrapper))


def measure(env: VecEnv, cfg: dict, iterations: int, device: str) -> dict:
    """One warm-up iteration, ``iterations`` timed ones and one counted one of ``cfg`` on ``env``.

    Returns the seconds per iteration of each phase (means over the timed iterations) and of the whole iteration
    (the runner's bookkeeping included), the FLOPs and dispatches of the counted iteration's rollout and update, and
    :func:`structure`'s network passes. A function compiled by the runner's ``torch_compile_mode`` runs eagerly while
    a dispatch mode is active, so its seconds are compiled and its counts are those of the eager code.
    """
    torch.manual_seed(0)  # the counts depend on the data a little (PPO's learning-rate rule compares its KL)
    meter = Meter(torch.cuda.synchronize if device.startswith("cuda") else (lambda: None))
    runner = OnPolicyRunner(env, cfg, log_dir=None, device=device)
    runner.learn(1)  # warm-up: first-call allocations, lazy initialisation, compilation
    with contextlib.ExitStack() as stack:
        for name in ("act", "process_env_step", "compute_returns"):
            meter.wrap(stack, runner.alg, name, "rollout")
        meter.wrap(stack, runner.alg, "update", "update")
        meter.wrap(stack, env, "step", "env")
        start = time.perf_counter()
        runner.learn(iterations)  # RSL-RL runs `iterations` more iterations after the first call
        wall = time.perf_counter() - start
        seconds = {phase: total / iterations for phase, total in meter.seconds.items()}
        with Counters() as counter:
            meter.counter = counter
            runner.learn(1)
    return {
        "seconds": seconds | {"iteration": wall / iterations},
        "flops": {phase: meter.flops[phase] for phase in ("rollout", "update")},
        "dispatches": {phase: meter.dispatches[phase] for phase in ("rollout", "update")},
        "networks": describe(runner.alg),
        "torch_compile_mode": cfg.get("torch_compile_mode"),
        "structure": structure(runner.alg, cfg["num_steps_per_env"]),
    }


# ---------------------------------------------------------------------------------------------------------------------
# what the networks and options require


def linear_flops(module: nn.Module) -> int:
    """Matrix-multiply FLOPs of one sample's forward pass through every ``nn.Linear`` in ``module``: 2 in out each."""
    return sum(2 * m.in_features * m.out_features for m in module.modules() if isinstance(m, nn.Linear))


def widths(module: nn.Module) -> str:
    """The output widths of the ``nn.Linear`` layers of ``module``, e.g. ``512-256-128-12``."""
    return "-".join(str(m.out_features) for m in module.modules() if isinstance(m, nn.Linear))


def describe(alg: TruDi | PPO) -> str:
    """The networks and the update's passes of ``alg``, in words, for the table's heading."""
    if isinstance(alg, TruDi):
        actor, critic, cfg = alg.actor, alg.critic, alg.cfg
        return (
            f"obs {actor.obs_dim}, act {actor.action_dim}; control network {widths(actor.control_net.mlp)} GELU,"
            f" N = {actor.process.num_steps} denoising steps;"
            f" critic encoder {widths(critic.encoder)}, head {widths(critic.head)}, predictor"
            f" {widths(critic.predictor)}; {cfg.num_learning_epochs} epochs x {cfg.num_mini_batches} mini-batches,"
            f" K = {cfg.kl_samples} old chains (`kl_chains: {cfg.kl_chains}`)"
        )
    return (
        f"actor {widths(alg.actor)}, critic {widths(alg.critic)}; {alg.num_learning_epochs} epochs x"
        f" {alg.num_mini_batches} mini-batches"
    )


def _pass(phase: str, name: str, per_sample: float, forward_flops: int, factor: int) -> dict:
    """One kind of network pass: how many per sample, its forward FLOPs, and the multiple its backward adds."""
    return {"phase": phase, "pass": name, "per_sample": per_sample, "forward_flops": forward_flops, "factor": factor}


def structure(alg: TruDi | PPO, steps: int) -> list[dict] | None:
    """The network passes per sample (per env step) of one iteration, read off the code at ``alg``'s options.

    ``factor``: 1 for a pass without a graph, 3 for a trained pass (its backward ~2x the forward: gradients of the
    weights and of the inputs), 2 for a frozen network that gradients flow through (inputs only). ``None`` for the
    TruDi options whose passes are not derived here (reverse KL, gate-aware backward, KL backtracking).
    """
    if isinstance(alg, PPO):
        actor, critic = linear_flops(alg.actor), linear_flops(alg.critic)
        return [
            _pass("rollout", "actor: the action at each step", 1.0, actor, 1),
            _pass("rollout", "critic: V(s) at each step, V at the last state (1 + 1/T)", 1 + 1 / steps, critic, 1),
            _pass(
                "update", "actor + critic on each sample, once per epoch", alg.num_learning_epochs, actor + critic, 3
            ),
        ]
    cfg, actor, critic = alg.cfg, alg.actor, alg.critic
    if cfg.kl_direction != "forward" or cfg.gate_aware_backward or cfg.kl_backtrack_steps:
        return None
    first = actor.control_net.mlp[0]
    state_term = 2 * actor.obs_dim * first.out_features  # once per chain: only x_n changes from step to step
    step = 2 * actor.action_dim * first.out_features + linear_flops(actor.control_net.mlp[1:])
    num_steps, samples, epochs = actor.process.num_steps, cfg.kl_samples, cfg.num_learning_epochs
    chain = num_steps * step + state_term
    kl = samples * num_steps * step + state_term  # the new kernel means at the K old chains' N latents
    q_value = linear_flops(critic.encoder) + linear_flops(critic.head)
    # With sarsa_bootstrap the chain drawn at s' is the next action: one chain per step, a fresh one at the rollout's
    # first step (the update changed the policy), and Q(s_t, a_t) is the previous step's Q(s', a') but at that step.
    if cfg.sarsa_bootstrap:
        chains = ("one per step (at s', it is the next action), one more at the first", 1 + 1 / steps, "1 + 3/T")
        q_values = ("critic: Q(s', a') at each step, Q(s, a) at the first (1 + 1/T)", 1 + 1 / steps)
    else:
        chains = ("the action and one at s' at each step", 2.0, "2 + 2/T")
        q_values = ("critic: Q(s', a') and Q(s, a) at each step", 2.0)
    fresh = cfg.kl_chains == "mini_batch"  # fresh old chains in every mini-batch and for the realised KL
    old_chains = {"update": 1, "mini_batch": epochs + 1, "rollout": 0}[cfg.kl_chains] * samples
    rows = [
        _pass(
            "rollout",
            f"SDE chain: {chains[0]}, two for the logged action std ({chains[2]})",
            chains[1] + 2 / steps,
            chain,
            1,
        ),
        _pass("rollout", q_values[0], q_values[1], q_value, 1),
        _pass(
            "update",
            f"old-policy chains, K = {samples}" + (", per epoch and for the realised KL" if fresh else ""),
            old_chains,
            chain,
            1,
        ),
        _pass(
            "update",
            "critic step: encoder, head and predictor, per epoch",
            cfg.critic_warmup_epochs + epochs,
            q_value + linear_flops(critic.predictor),
            3,
        ),
        _pass("update", "actor step: the SDE chain, per epoch", epochs, chain, 3),
        _pass("update", "actor step: trajectory KL, new kernel means at the old chains' latents", epochs, kl, 3),
        _pass("update", "actor step: frozen critic on the chain's action", epochs, q_value, 2),
        _pass("update", "realised KL of the whole update, at every state", 1, kl, 1),
    ]
    return [row for row in rows if row["per_sample"]]


# ---------------------------------------------------------------------------------------------------------------------
# memory


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


# ---------------------------------------------------------------------------------------------------------------------
# the command


def main() -> None:
    """Measure TruDi and PPO on one task and update the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="synthetic")
    parser.add_argument("--num-envs", type=int, default=None, help="default: 256 on synthetic, else the task's")
    parser.add_argument("--obs-dim", type=int, default=48, help="synthetic task only")
    parser.add_argument("--action-dim", type=int, default=12, help="synthetic task only")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations, after one warm-up")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (torch.set_num_threads)")
    parser.add_argument("--note", default="", help="what else ran on the machine, e.g. 'alone'")
    parser.add_argument("--memory", action="store_true", help="only the peak memory of TruDi's rollout and update")
    parser.add_argument("--trudi", nargs="*", default=[], metavar="agent.KEY=VALUE", help="TruDi config overrides")
    args = parser.parse_args()
    if args.task == "synthetic" and args.num_envs is None:
        args.num_envs = 256
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]  # before this run adds to it
    with contextlib.ExitStack() as stack:
        env, trudi_cfg, ppo_cfg = make_env(args, stack)
        measure_and_record(args, env, trudi_cfg, ppo_cfg, load)


def measure_and_record(args: argparse.Namespace, env: VecEnv, trudi_cfg: dict, ppo_cfg: dict, load: float) -> None:
    """Measure (memory, or TruDi then PPO) on ``env`` and put the entry into the committed tables."""
    trudi_cfg = merge_agent_cfg(trudi_cfg, None, args.trudi)
    ppo_cfg["num_steps_per_env"] = trudi_cfg["num_steps_per_env"]  # same batch for both
    entry = {
        "date": str(date.today()),
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else cpu_name(),
        "threads": torch.get_num_threads(),
        "load_average": load,
        "note": args.note,
        "task": args.task,
        "num_envs": env.num_envs,
        "num_steps_per_env": trudi_cfg["num_steps_per_env"],
    }
    if args.memory:
        entry |= measure_memory(env, trudi_cfg, args.device)
        _replace_entry("memory.json", entry, ("task", "num_envs", "device"))
    else:
        entry |= {"iterations": args.iterations, "trudi_overrides": args.trudi}
        entry["trudi"] = measure(env, trudi_cfg, args.iterations, args.device)
        entry["ppo"] = measure(env, ppo_cfg, args.iterations, args.device)
        _replace_entry("speed.json", entry, ("task", "num_envs", "trudi_overrides", "device"))
    print(json.dumps(entry, indent=1))
    write_pages()


def _replace_entry(name: str, entry: dict, key: tuple[str, ...]) -> None:
    """Put ``entry`` into the JSON list ``RESULTS_DIR/name`` in place of the one that agrees on ``key``.

    Entries kept for a page that cites them (``kept_for``) are never replaced: they are not current measurements.
    """
    path = os.path.join(RESULTS_DIR, name)
    with open(path) as file:
        entries = json.load(file)
    same = [e for e in entries if "kept_for" not in e and all(e.get(k) == entry[k] for k in key)]
    entries = [e for e in entries if not any(e is s for s in same)] + [entry]
    atomic_write_text(path, json.dumps(entries, indent=1))


if __name__ == "__main__":
    main()
