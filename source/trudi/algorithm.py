"""TruDi: trust-region diffusion policies, as an RSL-RL algorithm beside PPO in the stock ``OnPolicyRunner``.

:class:`TruDi` is what the runner sees; it owns the models and hands the work to two halves that share them:
:class:`~trudi.rollout.TruDiRollout` acts and stores transitions, :class:`~trudi.update.TruDiUpdate` trains on them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from rsl_rl.env import VecEnv
from rsl_rl.utils import resolve_callable, resolve_obs_groups
from tensordict import TensorDict

from trudi.actor import DiffusionActor
from trudi.config import ConfigError, check_choice, check_int, check_known_keys
from trudi.critic import QCritic
from trudi.options import AlgorithmOptions, takes_options
from trudi.parts import TruDiPart
from trudi.reward_scale import ReturnScale
from trudi.rollout import TruDiRollout
from trudi.runtime import Runtime
from trudi.storage import TruDiStorage
from trudi.trust_region import KLBound, LagrangeDuals
from trudi.update import TruDiUpdate

DEFAULT_CRITIC = "trudi.rsl_rl:QCritic"
"""Critic class used when a config names only the algorithm and the actor."""
DEFAULT_ACTOR = "trudi.rsl_rl:DiffusionActor"
"""The actor class TruDi is written for."""
FUSED_ADAM_DEVICES = ("cpu", "cuda")
"""Device types with a fused Adam kernel in torch; elsewhere (mps, xpu) Adam runs its per-tensor ops."""
COMPILE_MODES = ("default", "max-autotune-no-cudagraphs", "reduce-overhead", "max-autotune")
"""The runner's ``torch_compile_mode`` values TruDi accepts (``None`` compiles nothing)."""
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")
"""Compile modes that capture CUDA graphs; TruDi copies the outputs out of the graphs' buffers (:func:`graph_safe`)."""


class TruDi:
    """Trust-region diffusion policy optimisation (docs/algorithm.md §1), with RSL-RL's algorithm interface.

    Per iteration the runner calls :meth:`act` and :meth:`process_env_step` for every step of the rollout, then
    :meth:`compute_returns` and :meth:`update`. The options are read as typed fields of :attr:`cfg`.
    """

    cfg: AlgorithmOptions
    """The validated ``algorithm`` options."""
    actor: DiffusionActor
    """The diffusion policy being trained."""
    old_actor: DiffusionActor
    """Frozen copy of the policy that collected the current rollout; the trust region is measured against it."""
    critic: QCritic
    """The distributional Q critic."""
    storage: TruDiStorage
    """Rollout buffers."""
    duals: LagrangeDuals
    """Entropy temperature and KL multiplier."""
    bound: KLBound
    """The trust region's bound ``epsilon`` and the rule that sets it each update."""
    return_scale: ReturnScale | None
    """The reward normaliser (``None`` without ``reward_normalization``)."""
    optimizer: torch.optim.Adam
    """One Adam over the actor's, the critic's and the duals' parameters."""
    runtime: Runtime
    """Device, precision of the network passes and torchrun ranks, shared by the rollout and the update."""
    rollout: TruDiRollout
    """Acting and storing transitions."""
    learner: TruDiUpdate
    """The update."""

    @takes_options(AlgorithmOptions)
    def __init__(
        self,
        actor: DiffusionActor,
        critic: QCritic,
        storage: TruDiStorage,
        device: str = "cpu",
        multi_gpu_cfg: dict | None = None,
        rnd_cfg: dict | None = None,
        **options: Any,
    ) -> None:
        """Create the algorithm.

        Args:
            actor: The diffusion actor.
            critic: The Q critic.
            storage: Rollout storage sized for ``num_envs x num_steps_per_env``.
            device: Torch device.
            multi_gpu_cfg: Set by the runner under ``torchrun``: ranks and world size.
            rnd_cfg: Must be ``None`` (random network distillation is not supported); present because RSL-RL reads it.
            **options: The ``algorithm`` options, each declared (type, default, allowed values, meaning) in
                :class:`~trudi.options.AlgorithmOptions`.
        """
        self.cfg = cfg = AlgorithmOptions.validated(options)
        if rnd_cfg is not None:
            raise ConfigError(f"algorithm.rnd_cfg={rnd_cfg!r} is invalid: TruDi does not support RND; use None.")
        batch_size = storage.num_envs * storage.num_steps
        if cfg.num_mini_batches > batch_size:
            raise ConfigError(
                f"algorithm.num_mini_batches={cfg.num_mini_batches} is invalid: must be <= num_envs *"
                f" num_steps_per_env = {batch_size}."
            )
        self.device = device
        self.runtime = Runtime.from_multi_gpu_cfg(device, cfg.mixed_precision, multi_gpu_cfg)
        # RSL-RL's runner reads these two; TruDi has no intrinsic rewards.
        self.rnd = None
        self.intrinsic_rewards = None

        self.actor = actor
        self.critic = critic
        self.storage = storage
        self.old_actor = copy.deepcopy(actor).requires_grad_(False)
        if cfg.stores_old_chains:
            num_stored = 1 if cfg.keeps_rollout_chains else cfg.kl_samples
            storage.reserve_chains(num_stored, actor.process.num_steps, actor.action_dim)
        self.duals = LagrangeDuals(
            cfg.init_entropy_coef, cfg.init_kl_multiplier, cfg.learn_entropy_coef, cfg.learn_kl_multiplier
        ).to(device)
        self.bound = KLBound(cfg)
        self.return_scale = ReturnScale(storage.num_envs, cfg.gamma).to(device) if cfg.reward_normalization else None
        # One Adam over three groups: each step only touches the parameters that received gradients. The fused kernel
        # (one pass over all parameters instead of a dozen per-tensor ops) computes the same update; 128 steps per
        # iteration made the unfused one 5% of the update on small networks.
        self.optimizer = torch.optim.Adam(
            [
                {"params": list(actor.parameters()), "name": "actor"},
                {"params": list(critic.parameters()), "name": "critic"},
                {"params": list(self.duals.parameters()), "name": "duals", "lr": cfg.dual_learning_rate},
            ],
            lr=cfg.learning_rate,
            fused=torch.device(device).type in FUSED_ADAM_DEVICES,
        )
        # The two halves share the models, the storage and the runtime.
        shared = TruDiPart(cfg, actor, critic, storage, self.duals, self.return_scale, self.runtime)
        self.rollout = TruDiRollout(**vars(shared))
        self.learner = TruDiUpdate(**vars(shared), old_actor=self.old_actor, bound=self.bound, optimizer=self.optimizer)

    # ------------------------------------------------------------------ factory

    @staticmethod
    def construct_algorithm(obs: TensorDict, env: VecEnv, cfg: dict, device: str) -> TruDi:
        """Build actor, critic, storage and algorithm from an RSL-RL train config dict.

        Sub-configs are deep-copied (rsl-rl 5.4.2's PPO pops ``class_name`` in place; we never mutate the caller's
        dict apart from the keys the runner itself needs: ``algorithm.rnd_cfg`` and the resolved ``obs_groups``).
        """
        # rsl-rl 5.4.2's runner and logger index cfg["algorithm"]["rnd_cfg"] directly.
        cfg["algorithm"].setdefault("rnd_cfg", None)
        alg_cfg = copy.deepcopy(cfg["algorithm"])
        actor_cfg = copy.deepcopy(cfg.get("actor") or {})
        critic_cfg = copy.deepcopy(cfg.get("critic") or {"class_name": DEFAULT_CRITIC})
        alg_class = resolve_callable(alg_cfg.pop("class_name"))
        if "class_name" not in actor_cfg:
            raise ConfigError("actor.class_name is missing: set it to 'trudi.rsl_rl:DiffusionActor'.")
        actor_class = _resolve_model_class("actor", actor_cfg.pop("class_name"), DiffusionActor, DEFAULT_ACTOR)
        critic_class = _resolve_model_class(
            "critic", critic_cfg.pop("class_name", DEFAULT_CRITIC), QCritic, DEFAULT_CRITIC
        )
        check_known_keys(
            "algorithm", alg_cfg, alg_class, skip=("actor", "critic", "storage", "device", "multi_gpu_cfg")
        )
        check_known_keys("actor", actor_cfg, actor_class, skip=("obs", "obs_groups", "obs_set", "output_dim"))
        check_known_keys("critic", critic_cfg, critic_class, skip=("obs", "obs_groups", "obs_set", "action_dim"))
        num_steps = check_int("num_steps_per_env", cfg.get("num_steps_per_env"), minimum=1)

        cfg["obs_groups"] = resolve_obs_groups(obs, cfg.get("obs_groups") or {}, ["actor", "critic"])
        actor = actor_class(obs, cfg["obs_groups"], "actor", env.num_actions, **actor_cfg).to(device)
        critic = critic_class(obs, cfg["obs_groups"], "critic", env.num_actions, **critic_cfg).to(device)
        storage = TruDiStorage(env.num_envs, num_steps, obs, env.num_actions, critic.embedding_dim, device)
        alg = alg_class(actor, critic, storage, device=device, multi_gpu_cfg=cfg.get("multi_gpu"), **alg_cfg)
        # The runner-level compile switch, as RSL-RL's PPO reads it.
        alg.compile(cfg.get("torch_compile_mode"))
        return alg

    # ------------------------------------------------------------------ rollout

    def compile(self, mode: str | None = None) -> None:
        """``torch.compile`` the rollout's chain and the actor step's chain + trajectory KL (fixed shapes).

        RSL-RL's runner-level ``torch_compile_mode`` arrives here, as it does for PPO. Unlike PPO, TruDi also accepts
        the CUDA-graph modes: each compiled call starts a new graph step and its outputs are copied out of the graph's
        buffers (:func:`graph_safe`). The first iteration compiles; the plain functions stay the reference the tests
        compare against.

        Args:
            mode: A ``torch.compile`` mode, or ``None`` to run eagerly.
        """
        if mode is None:
            return
        check_choice("torch_compile_mode", mode, COMPILE_MODES)
        # Rollout batches (num_envs) and mini-batches have fixed sizes, so each graph is compiled once per grad mode.
        sample_chain = torch.compile(self.actor.sde_chain, dynamic=False, mode=mode)
        policy_terms = torch.compile(self.learner.chain_and_kl, dynamic=False, mode=mode)
        if mode in CUDA_GRAPH_MODES:
            sample_chain, policy_terms = graph_safe(sample_chain), graph_safe(policy_terms)
        self.rollout.sample_chain, self.learner.policy_terms = sample_chain, policy_terms
        # The gate-aware KL selects a varying number of states, which the compiled graphs' fixed shapes cannot follow.
        self.learner.gate_aware_backward = False

    # ------------------------------------------------------------------ rollout and update

    def act(self, obs: TensorDict) -> torch.Tensor:
        """Sample actions with the SDE chain; returns environment actions ``action_scale * tanh(x_N)``."""
        return self.rollout.act(obs)

    def process_env_step(
        self, obs: TensorDict, rewards: torch.Tensor, dones: torch.Tensor, extras: dict[str, torch.Tensor]
    ) -> None:
        """Store one transition with its soft reward and bootstrap value (:meth:`TruDiRollout.process_env_step`)."""
        self.rollout.process_env_step(obs, rewards, dones, extras)

    def compute_returns(self, obs: TensorDict) -> None:
        """Normalise the rollout's rewards and compute its lambda-returns (:meth:`TruDiRollout.compute_returns`)."""
        self.rollout.compute_returns(obs)

    def update(self) -> dict[str, float]:
        """Train critic, actor and duals on the stored rollout; returns the diagnostics (docs/algorithm.md §5)."""
        loss_dict = self.learner.update()
        self.rollout.discard_next_sample()
        return loss_dict

    # ------------------------------------------------------------------ runner interface

    @property
    def learning_rate(self) -> float:
        """The Adam learning rate (constant)."""
        return self.cfg.learning_rate

    def get_policy(self) -> DiffusionActor:
        """The policy model (deterministic ODE sampler by default)."""
        return self.actor

    def train_mode(self) -> None:
        """Put the trained models in training mode."""
        self.actor.train()
        self.critic.train()

    def eval_mode(self) -> None:
        """Put the trained models in evaluation mode (the normalisers stop updating)."""
        self.actor.eval()
        self.critic.eval()

    def save(self) -> dict:
        """Everything needed to resume: models (with their normalisers), optimizer, old actor, duals, RNG state."""
        rng_state = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng_state["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "actor_state_dict": self.actor.state_dict(),
            "critic_state_dict": self.critic.state_dict(),
            "optimizer_state_dict": self.optimizer.state_dict(),
            "old_actor_state_dict": self.old_actor.state_dict(),
            "duals_state_dict": self.duals.state_dict(),
            "kl_bound_state_dict": self.bound.state_dict(),
            "return_scale_state_dict": self.return_scale.state_dict() if self.return_scale is not None else None,
            "rng_state": rng_state,
        }

    def load(self, loaded_dict: dict, load_cfg: dict | None, strict: bool) -> bool:
        """Restore what ``load_cfg`` selects (all by default).

        ``load_cfg`` keys: ``actor``, ``critic``, ``optimizer``, ``iteration`` (as PPO) and TruDi's ``old_actor``,
        ``duals``, ``rng``. A checkpoint without an old actor (e.g. written by an earlier tool) syncs it to the actor.
        Returns whether the runner should restore the iteration counter.
        """
        if load_cfg is None:
            load_cfg = {key: True for key in ("actor", "critic", "optimizer", "iteration", "old_actor", "duals", "rng")}
        if load_cfg.get("actor"):
            self.actor.load_state_dict(loaded_dict["actor_state_dict"], strict=strict)
            self.rollout.discard_next_sample()
        if load_cfg.get("critic"):
            self.critic.load_state_dict(loaded_dict["critic_state_dict"], strict=strict)
        if load_cfg.get("optimizer"):
            # Whether Adam runs fused depends on this run's device, not the checkpoint's; set before loading, so the
            # step counters are placed the way the fused kernel needs them.
            state = loaded_dict["optimizer_state_dict"]
            fused = self.optimizer.defaults["fused"]
            state = {**state, "param_groups": [{**group, "fused": fused} for group in state["param_groups"]]}
            self.optimizer.load_state_dict(state)
            # The learning rate is a constant of the config, not state: a resumed run uses the configured one.
            for group in self.optimizer.param_groups:
                group["lr"] = self.cfg.dual_learning_rate if group.get("name") == "duals" else self.cfg.learning_rate
        if load_cfg.get("old_actor") and "old_actor_state_dict" in loaded_dict:
            self.old_actor.load_state_dict(loaded_dict["old_actor_state_dict"], strict=strict)
        elif load_cfg.get("actor"):
            self.old_actor.load_state_dict(self.actor.state_dict())
        if load_cfg.get("duals") and "duals_state_dict" in loaded_dict:
            self.duals.load_state_dict(loaded_dict["duals_state_dict"], strict=strict)
            scale_state = loaded_dict.get("return_scale_state_dict")
            if self.return_scale is not None and scale_state is not None:
                self.return_scale.load_state_dict(scale_state, strict=strict)
            # Checkpoints from before the progress rule have no bound state: such a run restarts it at kl_bound.
            # (Before the bound rules were merged into one class, checkpoints named the bound's state after progress.)
            bound_state = loaded_dict.get("kl_bound_state_dict", loaded_dict.get("progress_bound_state_dict"))
            if bound_state is not None:
                self.bound.load_state_dict(bound_state)
        # Only rank 0's generators are in a checkpoint; the other ranks keep their own (per-rank seeded) ones, or every
        # rank would draw the same noise after a resume.
        if load_cfg.get("rng") and "rng_state" in loaded_dict and self.runtime.rank == 0:
            torch.set_rng_state(loaded_dict["rng_state"]["torch"].cpu())
            if "cuda" in loaded_dict["rng_state"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(loaded_dict["rng_state"]["cuda"])
        return bool(load_cfg.get("iteration"))

    def broadcast_parameters(self) -> None:
        """Copy rank 0's models, old actor and duals (with the normaliser statistics and critic support) to every rank.

        The optimizer state is not sent: it is empty at the start and restored from the same checkpoint on a resume.
        """
        modules = [self.actor, self.critic, self.old_actor, self.duals]
        if self.return_scale is not None:
            modules.append(self.return_scale)  # its persistent statistics; each rank keeps its own envs' returns
        for module in modules:
            for tensor in module.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)

    def reduce_parameters(self) -> None:
        """Average gradients across ranks; the duals' too, so every rank takes the same trust-region decision."""
        self.learner.average_gradients()


def graph_safe(function: Callable) -> Callable:
    """Wrap a function compiled with CUDA graphs so that its outputs survive the next replay.

    Each call starts a new graph step (``cudagraph_mark_step_begin``, so a replay may reuse the buffers of the previous
    call) and returns copies of the output tensors: the rollout keeps a chain's outputs across the next call, and the
    actor step's outputs are still needed in its backward pass. Around an uncompiled function the wrapper changes no
    value (``tests/test_compile.py``).
    """

    def call(*args, **kwargs):
        torch.compiler.cudagraph_mark_step_begin()
        return _copy_tensors(function(*args, **kwargs))

    return call


def _copy_tensors(value: object) -> object:
    """``value`` with every tensor in it (nested in tuples and lists) cloned."""
    if torch.is_tensor(value):
        return value.clone()
    if isinstance(value, tuple | list):
        return type(value)(_copy_tensors(item) for item in value)
    return value


def _resolve_model_class(section: str, class_name: object, base: type, default: str) -> type:
    """Resolve ``<section>.class_name`` and require a subclass of ``base``; one-line ConfigError otherwise."""
    try:
        model_class = resolve_callable(class_name)
    except (ImportError, AttributeError, ValueError, TypeError) as error:
        raise ConfigError(
            f"{section}.class_name={class_name!r} is invalid: cannot be resolved ({error}); use {default!r}."
        ) from None
    if not (isinstance(model_class, type) and issubclass(model_class, base)):
        raise ConfigError(
            f"{section}.class_name={class_name!r} is invalid: TruDi needs a {base.__name__} (or a subclass),"
            f" e.g. {default!r}."
        )
    return model_class
