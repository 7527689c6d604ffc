"""Deployment latency on the CPU: exported TruDi policies (ODE, N = 8 and 4) against a Gaussian MLP policy.

    python benchmarks/deploy_latency.py [--obs-dim 48 --action-dim 12 --hidden 256 256 256 --threads 1]

Each policy is exported the way RSL-RL's runner exports it (``as_jit`` + ``torch.jit.script``, ``as_onnx`` +
``torch.onnx.export``; here with a dynamic batch axis so batch 64 can run too) and timed at batch 1 and 64 with
TorchScript and with onnxruntime, one thread by default (a robot's control loop). The MLP is RSL-RL's own
``MLPModel`` with the same hidden widths, so the ratio is the price of the denoising chain. Writes
``docs/results/deploy.json``, then the pages built from it (``benchmarks/report.py``).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import time
from datetime import date

import numpy as np
import onnxruntime
import torch
from report import write_pages
from results import write_json
from rsl_rl.models import MLPModel
from tensordict import TensorDict

from trudi.rsl_rl import DiffusionActor


def _median_ms(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` in milliseconds, after a warm-up."""
    for _ in range(max(10, repeats // 10)):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return 1e3 * statistics.median(samples)


def build_policies(obs_dim: int, action_dim: int, hidden: list[int]) -> dict[str, torch.nn.Module]:
    """The policies to compare, with normalisers filled from random data so they are not identities."""
    obs = TensorDict({"policy": torch.randn(256, obs_dim)}, batch_size=[256])
    groups = {"actor": ["policy"]}
    policies: dict[str, torch.nn.Module] = {
        f"TruDi N={steps} (ODE)": DiffusionActor(
            obs, groups, "actor", action_dim, hidden_dims=hidden, num_denoising_steps=steps
        )
        for steps in (8, 4, 2, 1)
    }
    policies |= {
        "Gaussian MLP (PPO)": MLPModel(
            obs,
            groups,
            "actor",
            action_dim,
            hidden_dims=hidden,
            activation="elu",
            obs_normalization=True,
            distribution_cfg={"class_name": "GaussianDistribution", "init_std": 1.0},
        ),
    }
    for name, policy in policies.items():
        policy.update_normalization(obs)
        policy.eval()
        if name.startswith("TruDi"):
            # The control's output layer starts near zero (the initial policy is the uncontrolled process); give it
            # trained-like weights so the parity check compares non-trivial actions.
            with torch.no_grad():
                policy.control_net.mlp[-1].weight.normal_(0.0, 0.05)
    return policies


def measure(name: str, policy: torch.nn.Module, obs_dim: int, repeats: int) -> dict:
    """Latencies (ms) of the TorchScript and ONNX exports at batch 1 and 64, and their largest error vs torch."""
    jit_policy = torch.jit.script(policy.as_jit().to("cpu").eval())
    onnx_module = policy.as_onnx(verbose=False).to("cpu").eval()
    buffer = io.BytesIO()
    torch.onnx.export(
        onnx_module,
        onnx_module.get_dummy_inputs(),
        buffer,
        export_params=True,
        opset_version=18,
        input_names=onnx_module.input_names,
        output_names=onnx_module.output_names,
        dynamic_axes={onnx_module.input_names[0]: {0: "batch"}, onnx_module.output_names[0]: {0: "batch"}},
        dynamo=False,
    )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(buffer.getvalue(), options)
    input_name = session.get_inputs()[0].name

    row = {"policy": name}
    errors = []
    for batch in (1, 64):
        x = torch.randn(batch, obs_dim)
        x_np = x.numpy()
        with torch.inference_mode():
            reference = policy(TensorDict({"policy": x}, batch_size=[batch])).numpy()
            row[f"jit_b{batch}_ms"] = _median_ms(lambda x=x: jit_policy(x), repeats)
            errors.append(np.abs(jit_policy(x).numpy() - reference).max())
        row[f"onnx_b{batch}_ms"] = _median_ms(lambda x_np=x_np: session.run(None, {input_name: x_np}), repeats)
        errors.append(np.abs(session.run(None, {input_name: x_np})[0] - reference).max())
    row["max_abs_error_vs_torch"] = float(max(errors))
    return row


def main() -> None:
    """Measure every policy and write the results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--obs-dim", type=int, default=48, help="48: ANYmal-D flat velocity task")
    parser.add_argument("--action-dim", type=int, default=12)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256, 256])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    policies = build_policies(args.obs_dim, args.action_dim, args.hidden)
    rows = [measure(name, policy, args.obs_dim, args.repeats) for name, policy in policies.items()]
    mlp = rows[-1]
    for row in rows:
        row["jit_b1_vs_mlp"] = row["jit_b1_ms"] / mlp["jit_b1_ms"]
        row["onnx_b1_vs_mlp"] = row["onnx_b1_ms"] / mlp["onnx_b1_ms"]

    device = f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} thread(s)"
    meta = {"date": str(date.today()), "device": device, "torch": torch.__version__}
    meta |= {"onnxruntime": onnxruntime.__version__, "obs_dim": args.obs_dim, "action_dim": args.action_dim}
    meta |= {"hidden": args.hidden, "repeats": args.repeats}
    write_json("deploy.json", {**meta, "rows": rows})
    write_pages()


if __name__ == "__main__":
    main()
