"""What the two halves of TruDi, the rollout and the update, share: the options, the models and the storage."""

from __future__ import annotations

from dataclasses import dataclass

from trudi.actor import DiffusionActor
from trudi.critic import QCritic
from trudi.options import AlgorithmOptions
from trudi.reward_scale import ReturnScale
from trudi.runtime import Runtime
from trudi.storage import TruDiStorage
from trudi.trust_region import LagrangeDuals


@dataclass(eq=False, repr=False)
class TruDiPart:
    """A half of :class:`~trudi.algorithm.TruDi`; both halves hold the same objects, which the algorithm owns."""

    cfg: AlgorithmOptions
    """The validated ``algorithm`` options."""
    actor: DiffusionActor
    """The policy: it acts in the rollout and is trained by the update."""
    critic: QCritic
    """The Q critic: bootstrap values and next embeddings in the rollout, trained by the update."""
    storage: TruDiStorage
    """The rollout buffers, their soft rewards and lambda-returns."""
    duals: LagrangeDuals
    """The entropy temperature (the soft reward's) and the KL multiplier."""
    return_scale: ReturnScale | None
    """The reward normaliser (``None`` without ``reward_normalization``)."""
    runtime: Runtime
    """Device, precision of the network passes and torchrun ranks."""
