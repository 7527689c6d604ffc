"""The diffusion actor: an RSL-RL model whose output distribution is a controlled diffusion chain."""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn as nn
from tensordict import TensorDict

from trudi.config import ConfigError
from trudi.observations import ObservationInput
from trudi.options import ActorOptions, takes_options
from trudi.sampler import (
    PRE_TANH_LIMIT,
    ControlNetwork,
    DiffusionProcess,
    gaussian_log_prob,
    noise_log_prob,
    squash,
    squash_log_det,
)


class DiffusionActor(nn.Module):
    """A DIME-style diffusion policy with the RSL-RL model interface.

    ``forward`` is deterministic by default: the probability-flow (ODE) sampler started at ``x_0 = 0``, so play,
    export and distillation see a fixed policy. ``stochastic_output=True`` draws an SDE sample, as in training.
    Observations are normalised inside the model by a running normaliser that the algorithm updates once per
    iteration, after the update, so it is frozen while the update runs.
    """

    is_recurrent: bool = False
    """Diffusion actors are feed-forward."""

    @takes_options(ActorOptions)
    def __init__(
        self,
        obs: TensorDict,
        obs_groups: dict[str, list[str]],
        obs_set: str,
        output_dim: int,
        distribution_cfg: dict | None = None,
        **options: Any,
    ) -> None:
        """Build the actor.

        Args:
            obs: Example observations (only shapes are read).
            obs_groups: Mapping of observation sets to observation groups.
            obs_set: The observation set this model reads (``"actor"``); also the prefix of error messages.
            output_dim: Action dimension ``d``.
            distribution_cfg: Must be ``None``: the chain is the distribution. Accepted because Isaac Lab passes it.
            **options: The ``actor`` options, each declared (type, default, allowed values, meaning) in
                :class:`~trudi.options.ActorOptions`.
        """
        super().__init__()
        if distribution_cfg is not None:
            raise ConfigError(
                f"{obs_set}.distribution_cfg={distribution_cfg!r} is invalid: must be None, the diffusion chain is the"
                " action distribution of DiffusionActor."
            )
        o = ActorOptions.validated(options, section=obs_set)
        self.ode_control_scale = o.ode_control_scale
        self.action_scale = o.action_scale

        self.observations = ObservationInput(obs, obs_groups, obs_set, o.obs_normalization)
        self.obs_dim = self.observations.dim
        self.action_dim = output_dim
        self.process = DiffusionProcess(
            output_dim,
            o.num_denoising_steps,
            o.init_std,
            o.schedule,
            o.learn_friction,
            o.init_friction,
            o.learn_dt,
            o.per_step_dt,
        )
        self.control_net = ControlNetwork(
            output_dim, self.obs_dim, list(o.hidden_dims), o.time_frequencies, o.time_embedding_dim
        )
        self.register_buffer("_steps", torch.arange(o.num_denoising_steps, dtype=torch.float32), persistent=False)
        # What RSL-RL logs as the action std: measured on actions by :meth:`measure_action_std` (not checkpointed).
        self.register_buffer("_action_std", torch.zeros(output_dim), persistent=False)

    # ------------------------------------------------------------------ RSL-RL model interface

    def get_latent(self, obs: TensorDict) -> torch.Tensor:
        """Concatenate this model's observation groups and normalise them (B, obs_dim)."""
        return self.observations(obs)

    def forward(
        self,
        obs: TensorDict,
        masks: torch.Tensor | None = None,
        hidden_state: None = None,
        stochastic_output: bool = False,
    ) -> torch.Tensor:
        """Return environment actions: ODE from ``x_0 = 0`` by default, an SDE sample if ``stochastic_output``."""
        state = self.get_latent(obs)
        if stochastic_output:
            x_final = self.sde_chain(state)[0]
        else:
            x_final = self.ode_chain(state, torch.zeros(state.shape[0], self.action_dim, device=state.device))
        return self.action_scale * squash(x_final)

    def reset(self, dones: torch.Tensor | None = None, hidden_state: None = None) -> None:
        """No recurrent state to reset."""

    def get_hidden_state(self) -> None:
        """No recurrent state."""
        return None

    def detach_hidden_state(self, dones: torch.Tensor | None = None) -> None:
        """No recurrent state."""

    @property
    def output_std(self) -> torch.Tensor:
        """Per-dimension std of the environment actions at a state (d,), as :meth:`measure_action_std` last measured.

        RSL-RL logs it as ``Policy/mean_std`` and prints it as "Mean action std".
        """
        return self._action_std

    @torch.no_grad()
    def measure_action_std(self, obs: TensorDict) -> torch.Tensor:
        """Measure the per-state action std on two SDE samples at each of these observations.

        For two independent draws at the same state, ``E[(a1 - a2)^2] / 2`` is the action variance at that state; its
        mean over the states is what is stored, so the state dependence of the policy does not count as spread.
        """
        state = self.get_latent(obs)
        first, second = (self.action_scale * squash(self.sde_chain(state)[0]) for _ in range(2))
        self._action_std.copy_(((first - second).square().mean(0) / 2.0).sqrt())
        return self._action_std

    def update_normalization(self, obs: TensorDict) -> None:
        """Update the running observation statistics (no-op in eval mode or without normalisation)."""
        self.observations.update(obs)

    def as_jit(self) -> nn.Module:
        """Return a TorchScript-compatible deterministic policy on concatenated raw observations."""
        return ExportedDiffusionPolicy(self)

    def as_onnx(self, verbose: bool = False) -> nn.Module:
        """Return an ONNX-exportable deterministic policy on concatenated raw observations."""
        return ExportedDiffusionPolicy(self)

    # ------------------------------------------------------------------ the chains

    def step_biases(self) -> torch.Tensor:
        """The control network's first-layer bias for each denoising step (N, H), embedded step included."""
        return self.control_net.step_biases(self.control_net.time_embedding(self._steps))

    def condition(self, state: torch.Tensor, repeats: int = 1) -> tuple[torch.Tensor, ...]:
        """What every step of a chain shares, for states (B, obs_dim).

        Returns ``eta`` (N, d), the control network's state term (B * repeats, H), with each state repeated
        ``repeats`` times in a row, the step biases (N, H) and the first layer's ``x_n`` columns (H, d).
        """
        state_term = self.control_net.state_term(state).repeat_interleave(repeats, dim=0)
        latent_weight = self.control_net.split_first_layer()[0]
        return self.process.etas(), state_term, self.step_biases(), latent_weight

    def step_mean(
        self, x: torch.Tensor, condition: tuple[torch.Tensor, ...], n: int, control_scale: float = 1.0
    ) -> torch.Tensor:
        """The mean ``x_n + eta_n (-x_n / s0^2 + c f(x_n, s, n))`` of step ``n``, given :meth:`condition`."""
        etas, state_term, step_biases, latent_weight = condition
        control = self.control_net(x, state_term, step_biases[n], latent_weight)
        return self.process.mean(x, control, etas[n], control_scale)

    def step_means(self, latents: torch.Tensor, condition: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Every step's kernel mean at given latents in one pass: row ``n`` of ``latents`` (N, B, d) is ``x_n``.

        Equal to :meth:`step_mean` applied step by step; one batched pass is possible once the latents are known
        (the trust region's old chains), because no step then waits for the previous one.
        """
        etas, state_term, step_biases, latent_weight = condition
        control = self.control_net(latents, state_term, step_biases.unsqueeze(1), latent_weight)  # (N, B, d)
        return self.process.mean(latents, control, etas.unsqueeze(1))

    def sde_chain(self, state: torch.Tensor, return_path: bool = False) -> tuple:
        """Sample one reparameterised chain per row of normalised observations ``state`` (B, obs_dim).

        With ``return_path`` a fourth element lists ``(x_n, mu_n)`` for each step: the latent and the kernel mean the
        next latent was drawn around, both differentiable (the reverse trajectory KL is measured on them).

        Returns:
            ``x_N`` (B, d); the pseudo log-likelihood ``l`` (B,), an upper bound on ``log pi(a|s)`` in expectation:
            ``log N(x_0; 0, s0^2) + sum_n log p(x_{n+1}|x_n, s) - sum_n log q(x_n|x_{n+1}) - log|J_tanh|``; and its
            running part ``l - log N(x_0; 0, s0^2)``, which the reference uses (and we default to) for the
            temperature's entropy estimate ``H = -mean(running part)``.
        """
        process = self.process
        condition = self.condition(state)
        eta = condition[0].unsqueeze(1)  # (N, 1, d)
        var = 2.0 * eta
        noise_scales = torch.sqrt(var)
        x = torch.randn(state.shape[0], self.action_dim, device=state.device) * process.init_std
        prior_log_prob = process.prior_log_prob(x)
        latents, noises, path = [x], [], []
        for n in range(process.num_steps):
            mean = self.step_mean(x, condition, n)
            if return_path:
                path.append((x, mean))
            noise = torch.randn_like(x)
            x = mean + noise_scales[n] * noise
            latents.append(x)
            noises.append(noise)
        # The densities need no step-by-step order once the chain is drawn: all N steps in one pass (N, B).
        chain = torch.stack(latents)  # (N + 1, B, d)
        before, after = chain[:-1], chain[1:]
        # The forward kernel's density is read off the noise: the same value, without a residual to differentiate.
        forward_log_prob = noise_log_prob(torch.stack(noises), var)
        # The uncontrolled reference (backward) kernel q(x_n | x_{n+1}).
        backward_log_prob = gaussian_log_prob(before, after - eta * after / process.init_std**2, var)
        running = (forward_log_prob - backward_log_prob).sum(0) - squash_log_det(x)
        if return_path:
            return x, prior_log_prob + running, running, path
        return x, prior_log_prob + running, running

    def ode_chain(self, state: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """Run the noise-free sampler ``x_{n+1} = x_n + eta_n (-x_n / s0^2 + c f(x_n, s, n))`` from ``x0``."""
        condition = self.condition(state)
        x = x0
        for n in range(self.process.num_steps):
            x = self.step_mean(x, condition, n, self.ode_control_scale)
        return x


class ExportedDiffusionPolicy(nn.Module):
    """The deterministic (ODE, ``x_0 = 0``) policy, unrolled over a fixed ``N``, with the normaliser inside.

    The control MLP's first layer sees ``[x_n, s, e_n]``. Only ``x_n`` changes from step to step: the state's
    projection is computed once per call, and the step embeddings ``e_n`` (constants after training) are folded
    into one first-layer bias per step. With the step sizes as buffers too, each step costs one small matmul on
    ``x_n`` plus the MLP's hidden layers. Scriptable by TorchScript and exportable to ONNX.
    """

    is_recurrent: bool = False

    def __init__(self, actor: DiffusionActor) -> None:
        super().__init__()
        self.obs_normalizer = copy.deepcopy(actor.observations.normalizer)
        mlp = copy.deepcopy(actor.control_net.mlp)
        with torch.no_grad():
            latent_weight, state_weight, _, _ = actor.control_net.split_first_layer()
            self.latent_in = nn.Linear(actor.action_dim, latent_weight.shape[0], bias=False)
            self.latent_in.weight.copy_(latent_weight)
            self.state_in = nn.Linear(actor.obs_dim, state_weight.shape[0], bias=False)
            self.state_in.weight.copy_(state_weight)
            step_biases = actor.step_biases()
            etas = actor.process.etas()
        self.hidden = mlp[1:]
        self.register_buffer("etas", etas.detach().clone())
        self.register_buffer("step_biases", step_biases.clone())
        self.num_steps = actor.process.num_steps
        self.action_dim = actor.action_dim
        self.prior_precision = 1.0 / actor.process.init_std**2
        self.control_scale = actor.ode_control_scale
        self.control_clip = actor.control_net.output_clip
        self.action_scale = actor.action_scale
        self.pre_tanh_limit = PRE_TANH_LIMIT
        self.input_size = actor.obs_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map concatenated raw observations (B, obs_dim) to actions (B, d)."""
        state_projection = self.state_in(self.obs_normalizer(x))
        latent = torch.zeros(x.shape[0], self.action_dim, dtype=x.dtype, device=x.device)
        for n in range(self.num_steps):
            pre_activation = self.latent_in(latent) + state_projection + self.step_biases[n]
            control = self.hidden(pre_activation).clamp(-self.control_clip, self.control_clip)
            latent = latent + self.etas[n] * (-latent * self.prior_precision + self.control_scale * control)
        return self.action_scale * torch.tanh(latent.clamp(-self.pre_tanh_limit, self.pre_tanh_limit))

    @torch.jit.export
    def reset(self) -> None:
        """No recurrent state to reset."""

    def get_dummy_inputs(self) -> tuple[torch.Tensor]:
        """Example input for ONNX tracing."""
        return (torch.zeros(1, self.input_size),)

    @property
    def input_names(self) -> list[str]:
        """ONNX input names."""
        return ["obs"]

    @property
    def output_names(self) -> list[str]:
        """ONNX output names."""
        return ["actions"]
