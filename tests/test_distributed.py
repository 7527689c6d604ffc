"""Multi-process TruDi: two gloo ranks on CPU stay in lockstep and train like one process on both ranks' data.

rsl-rl's ``OnPolicyRunner`` cannot host this on CPU: its ``_configure_multi_gpu`` hard-codes the NCCL backend and
requires the device ``cuda:<LOCAL_RANK>``. So each rank drives the algorithm the way the runner does: built by
``TruDi.construct_algorithm`` with the ``cfg["multi_gpu"]`` dict the runner writes, ``broadcast_parameters`` once,
then per iteration a rollout, ``compute_returns`` (under inference mode) and ``update``. The rollouts are fixed
synthetic data, different on each rank, so that the single-process reference can hold exactly their concatenation.
"""

import contextlib
import os
import socket
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from tensordict import TensorDict

from trudi.algorithm import TruDi
from trudi.storage import Transition
from trudi.tasks import trudi_train_cfg

WORLD_SIZE = 2
NUM_ENVS = 16  # per rank
NUM_STEPS = 4
ITERATIONS = 3
OBS_DIMS = {"policy": 3, "privileged": 2}
ACTION_DIM = 2
EMBEDDING_DIM = 32
STORAGE_FIELDS = (
    "actions",
    "rewards",
    "entropy_bonus",
    "terminations",
    "truncations",
    "next_values",
    "next_embeddings",
)
"""Fields of the stored ``Transition`` besides the observations."""


def _build(multi_gpu: dict | None, num_envs: int) -> TruDi:
    cfg = trudi_train_cfg(
        "distributed",
        num_steps_per_env=NUM_STEPS,
        actor={"hidden_dims": [32, 32], "num_denoising_steps": 3},
        critic={"hidden_dim": EMBEDDING_DIM, "num_bins": 31, "value_min": "auto", "value_max": "auto"},
        # One mini-batch per epoch: the gradient of the mean over the concatenated batch is then the mean of the
        # ranks' gradients, so one process can reproduce the ranks' update. The tiny KL bound puts about half of the
        # states outside the trust region, so the per-state gate and the KL multiplier's dual step are exercised.
        algorithm={
            "num_mini_batches": 1,
            "num_learning_epochs": 2,
            "learning_rate": 1e-3,
            "kl_samples": 2,
            "kl_chains": "mini_batch",  # this test fills the storage directly, without the rollout's chains
            # The bound follows the critic's fit of the returns, so the ranks must agree on the global batch's
            # explained variance for their gates to match the single process's.
            "kl_bound_rule": "critic_fit",
            "kl_bound": 1e-5,
            "kl_bound_min": 1e-7,
        },
    )
    cfg["obs_groups"] = {"actor": ["policy"], "critic": ["policy", "privileged"]}
    cfg["multi_gpu"] = multi_gpu  # the key and dict OnPolicyRunner._configure_multi_gpu writes
    obs = TensorDict({key: torch.zeros(num_envs, dim) for key, dim in OBS_DIMS.items()}, batch_size=[num_envs])
    env = SimpleNamespace(num_envs=num_envs, num_actions=ACTION_DIM)
    return TruDi.construct_algorithm(obs, env, cfg, "cpu")


def _rollout(rank: int, iteration: int) -> dict[str, torch.Tensor]:
    """One rank's fixed rollout (NUM_STEPS, NUM_ENVS, ...); each rank's observations have their own mean and scale."""
    gen = torch.Generator().manual_seed(1000 * iteration + rank)
    shape = (NUM_STEPS, NUM_ENVS)
    rollout = {key: torch.randn(*shape, dim, generator=gen) * (1 + rank) + 3.0 * rank for key, dim in OBS_DIMS.items()}
    rollout["actions"] = torch.rand(*shape, ACTION_DIM, generator=gen) * 1.8 - 0.9
    rollout["rewards"] = torch.randn(shape, generator=gen) + rank
    rollout["entropy_bonus"] = 0.1 * torch.randn(shape, generator=gen)
    rollout["next_values"] = torch.rand(shape, generator=gen) * 2.0 - 1.0
    rollout["next_embeddings"] = torch.randn(*shape, EMBEDDING_DIM, generator=gen)
    # The same episode ends on every rank: the self-predictive loss is a mean over the steps without one, and the
    # ranks' mean of such means is the global one only when their counts agree.
    step, env = torch.arange(NUM_STEPS)[:, None], torch.arange(NUM_ENVS)[None]
    rollout["terminations"] = (step + env) % 5 == 0
    rollout["truncations"] = ((step + 2 * env) % 7 == 0) & ~rollout["terminations"]
    return rollout


def _reference_permutation(size: int) -> torch.Tensor:
    """Order the reference's flattened (step, env) batch rank by rank, each rank's samples in that rank's own order."""
    return torch.arange(size).view(NUM_STEPS, WORLD_SIZE, NUM_ENVS).transpose(0, 1).flatten()


@contextlib.contextmanager
def _rank_noise(ranks: Sequence[int]) -> Iterator[None]:
    """Make the update's random draws those of the ranks whose data this process holds.

    Every Gaussian draw in the update has one row per sample (or K consecutive rows per sample in the trust-region
    KL), in batch order. Each draw is split into equal row blocks, one per rank in ``ranks``, drawn from that rank's
    own generator; a rank's process draws only its own block, the reference all of them in rank order. Mini-batch
    permutations are fixed so that the reference's batch is the ranks' batches one after the other.
    """
    generators = [torch.Generator().manual_seed(100 + rank) for rank in ranks]
    randn = torch.randn

    def split_randn(*size, device=None, dtype=None, **_):
        size = tuple(size[0]) if len(size) == 1 and not isinstance(size[0], int) else size
        rows = size[0] // len(generators)
        blocks = [randn(rows, *size[1:], generator=gen, dtype=dtype) for gen in generators]
        return torch.cat(blocks).to(device)

    def randperm(size, device=None, **_):
        permutation = _reference_permutation(size) if len(ranks) > 1 else torch.arange(size)
        return permutation.to(device)

    with (
        mock.patch.object(torch, "randn", split_randn),
        mock.patch.object(torch, "randn_like", lambda x, **_: split_randn(*x.shape, device=x.device, dtype=x.dtype)),
        mock.patch.object(torch, "randperm", randperm),
    ):
        yield


def _train(alg: TruDi, ranks: Sequence[int]) -> list[dict[str, float]]:
    """Run ITERATIONS of rollout -> returns -> update on the rollouts of ``ranks``, concatenated along the envs."""
    losses = []
    # Drawn before the noise is patched (the patch ignores generators).
    rollouts = [[_rollout(rank, iteration) for rank in ranks] for iteration in range(ITERATIONS)]
    alg.train_mode()
    with _rank_noise(ranks):
        for iteration in range(ITERATIONS):
            data = {key: torch.cat([r[key] for r in rollouts[iteration]], dim=1) for key in rollouts[iteration][0]}
            with torch.inference_mode():
                for t in range(NUM_STEPS):
                    obs = TensorDict({key: data[key][t] for key in OBS_DIMS}, batch_size=[data["rewards"].shape[1]])
                    alg.storage.add(Transition(obs, **{key: data[key][t] for key in STORAGE_FIELDS}))
                alg.compute_returns(obs)
            losses.append(alg.update())
    return losses


def _state(alg: TruDi) -> dict[str, torch.Tensor]:
    """Parameters and buffers (normalisers, critic support) of the actor, critic, old actor and duals."""
    modules = {"actor": alg.actor, "critic": alg.critic, "old_actor": alg.old_actor, "duals": alg.duals}
    return {
        f"{name}.{key}": value.clone() for name, module in modules.items() for key, value in module.state_dict().items()
    }


def _worker(rank: int, port: int, out_dir: Path) -> None:
    """One torchrun-like rank: the environment variables torchrun sets, a gloo group, training, its state saved."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD_SIZE)
    )
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE, timeout=timedelta(seconds=60))
    try:
        torch.manual_seed(rank)  # different initial weights per rank: broadcast_parameters must replace them
        alg = _build({"global_rank": rank, "local_rank": rank, "world_size": WORLD_SIZE}, NUM_ENVS)
        alg.broadcast_parameters()
        losses = _train(alg, [rank])
        torch.save({"state": _state(alg), "losses": losses}, out_dir / f"rank{rank}.pt")
        # A non-finite reward on rank 1 alone stops both ranks, rather than leaving rank 0 waiting in a collective.
        obs = TensorDict({key: torch.zeros(NUM_ENVS, dim) for key, dim in OBS_DIMS.items()}, batch_size=[NUM_ENVS])
        with torch.inference_mode():
            alg.act(obs)
            alg.process_env_step(obs, torch.full((NUM_ENVS,), float("nan") if rank else 0.0), torch.zeros(NUM_ENVS), {})
            with pytest.raises(FloatingPointError, match="reward"):
                alg.compute_returns(obs)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], prefix: str = "") -> float:
    return max(
        (a[key].double() - b[key].double()).abs().max().item()
        for key in a
        if key.startswith(prefix) and a[key].is_floating_point()
    )


def test_ranks_stay_identical_and_match_one_process_on_the_concatenated_batch(tmp_path):
    mp.spawn(_worker, args=(_free_port(), tmp_path), nprocs=WORLD_SIZE, join=True)
    results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]

    # (1) Lockstep: every parameter and buffer, and every logged statistic, is bitwise identical on both ranks.
    states = [result["state"] for result in results]
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
    assert results[0]["losses"] == results[1]["losses"]

    # (2) One process whose batch is both ranks' batches, same initial weights (rank 0's seed) and the same noise.
    torch.manual_seed(0)
    reference = _build(None, WORLD_SIZE * NUM_ENVS)
    reference_losses = _train(reference, range(WORLD_SIZE))
    reference_state = _state(reference)
    # Exact equality is impossible only through float32 rounding: the reference sums gradients over 2 x 64 samples
    # in one pass, the ranks in two passes plus an all-reduce. Relative rounding of ~1e-7 per gradient, through
    # 3 x 2 x 2 Adam steps of lr 1e-3 (whose step is ~lr * g / |g|), moves parameters by far less than 1e-5.
    tolerance = 1e-5
    difference = _max_difference(states[0], reference_state)
    assert difference < tolerance, difference
    assert torch.equal(states[0]["critic.value_range"], reference_state["critic.value_range"])
    assert int(states[0]["actor.observations.normalizer.count"]) == ITERATIONS * NUM_STEPS * WORLD_SIZE * NUM_ENVS
    assert any(0.0 < losses["trust_region/kl_over_bound_fraction"] < 1.0 for losses in reference_losses)
    for ranked, single in zip(results[0]["losses"], reference_losses, strict=True):
        assert ranked.keys() == single.keys()
        for key in ranked:
            assert ranked[key] == pytest.approx(single[key], rel=1e-4, abs=1e-5), key

    # (3) The comparison can fail: rank 0 without any all-reduce (its data alone) ends far from the synchronised
    # result, in the actor's weights and in the normaliser statistics alike.
    torch.manual_seed(0)
    alone = _build(None, NUM_ENVS)
    _train(alone, [0])
    alone_state = _state(alone)
    assert _max_difference(alone_state, states[0], "actor.control_net") > 100 * tolerance
    assert _max_difference(alone_state, states[0], "actor.observations.normalizer") > 1.0


def test_a_resume_restores_the_checkpoint_rng_on_rank_0_only():
    # The checkpoint holds rank 0's generator; restoring it everywhere would give every rank the same noise.
    torch.manual_seed(0)
    checkpoint = _build(None, NUM_ENVS).save()
    for rank in range(WORLD_SIZE):
        alg = _build({"global_rank": rank, "local_rank": rank, "world_size": WORLD_SIZE}, NUM_ENVS)
        torch.manual_seed(100 + rank)
        own_state = torch.get_rng_state()
        alg.load(checkpoint, None, strict=True)
        expected = checkpoint["rng_state"]["torch"] if rank == 0 else own_state
        assert torch.equal(torch.get_rng_state(), expected), rank
