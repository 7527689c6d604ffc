"""Where and how TruDi's tensors are computed: the device, the network passes' precision and the torchrun ranks."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn as nn

MIXED_PRECISION = {"none": None, "bf16": torch.bfloat16}
"""The autocast dtype of the network passes for each ``algorithm.mixed_precision`` (``None``: float32 throughout)."""


@dataclass
class Runtime:
    """The device, the autocast dtype of the network passes, and this process's place among the torchrun ranks.

    One object, shared by the rollout and the update.
    """

    device: str
    """Torch device of the models and the storage."""
    mixed_precision: str = "none"
    """``algorithm.mixed_precision``: ``none`` or ``bf16``."""
    is_multi_gpu: bool = False
    """Whether the run is distributed (torchrun); every reduction below is then a collective."""
    world_size: int = 1
    """Number of torchrun ranks (1 without torchrun)."""
    rank: int = 0
    """This process's global rank."""

    @classmethod
    def from_multi_gpu_cfg(cls, device: str, mixed_precision: str, multi_gpu_cfg: dict | None) -> Runtime:
        """The runtime of a process that RSL-RL's runner gave ``multi_gpu_cfg`` (``None`` without torchrun)."""
        if multi_gpu_cfg is None:
            return cls(device, mixed_precision)
        return cls(device, mixed_precision, True, multi_gpu_cfg["world_size"], multi_gpu_cfg["global_rank"])

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context of the network passes: bfloat16 autocast with ``mixed_precision: bf16``, else a no-op.

        Only forward passes run under it; backward and the optimizer step run outside, as autocast requires.
        """
        dtype = MIXED_PRECISION[self.mixed_precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=dtype)

    def sum_over_ranks(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over the ranks, in place; unchanged alone."""
        if self.is_multi_gpu:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        return tensor

    def max_over_ranks(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor``'s elementwise maximum over the ranks, in place; unchanged alone."""
        if self.is_multi_gpu:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
        return tensor

    def mean_over_ranks(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` (a per-rank mean over equal batch sizes) averaged over the ranks, in place; unchanged alone."""
        if self.is_multi_gpu:
            self.sum_over_ranks(value)
            value /= self.world_size
        return value

    def average_gradients(self, params: Iterable[nn.Parameter], bucket_mb: float) -> None:
        """Average the parameters' gradients over the ranks, in buckets of at most ``bucket_mb``."""
        params = list(params)
        try:
            from rsl_rl.utils import reduce_gradients_in_buckets
        except ImportError:  # rsl-rl-lib < 5.5: one flat all-reduce, as its own PPO does
            grads = [p.grad.view(-1) for p in params if p.grad is not None]
            flat = self.mean_over_ranks(torch.cat(grads))
            offset = 0
            for grad in grads:
                grad.copy_(flat[offset : offset + grad.numel()])
                offset += grad.numel()
            return
        reduce_gradients_in_buckets(params, self.world_size, bucket_mb)


def stop_if_nonfinite(
    stage: str, flags: dict[str, torch.Tensor], runtime: Runtime, losses: dict[str, float] | None = None
) -> None:
    """Stop training (before anything is saved) if a loss or a flagged tensor went non-finite.

    ``flags`` map a name (``"reward"``, ``"actor parameter 'w'"``) to a device-side bool that is true where it was
    non-finite; all are read from the device at once. Under torchrun they are OR-ed over the ranks so that all ranks
    stop together instead of the healthy ones waiting forever in the next collective.
    """
    names = list(flags)
    bad = []
    if flags:
        bad = runtime.max_over_ranks(torch.stack(list(flags.values())).float()).bool().tolist()
    culprits = [f"loss '{key}'" for key, value in (losses or {}).items() if not math.isfinite(value)]
    culprits += [name for name, flag in zip(names, bad, strict=True) if flag]
    if culprits:
        raise FloatingPointError(
            f"TruDi stopped: non-finite values in the {stage}: {', '.join(culprits[:8])}"
            f"{' ...' if len(culprits) > 8 else ''}. No checkpoint was written after this point; the last saved"
            " one is intact."
        )
