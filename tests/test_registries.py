"""Any Gymnasium registry and Dict observations through scripts/train.py and scripts/play.py (real processes).

The toy environment below is registered when this module is imported, so the scripts reach it as Gymnasium's
``module:EnvId`` (``test_registries:TruDiDictToy-v0`` with this directory on ``PYTHONPATH``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from gymnasium import spaces

from trudi.config import ConfigError
from trudi.envs import GymVecEnv, ObsLayout

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
HERE = Path(__file__).resolve().parent

TOY_ID = "TruDiDictToy-v0"
TOY_TASK = f"{__name__}:{TOY_ID}"
TOY_EPISODE = 16
RENAME_VARIABLE = "TRUDI_TOY_TARGET_KEY"
"""Renames the toy's ``target`` key: ``aim`` sorts before ``arm``, the same sizes in another order."""


class DictObsToy(gym.Env):
    """Observes a Dict nested one level, with a 2-D, a 1-D and a scalar box; rewards acting towards the target."""

    def __init__(self) -> None:
        self.target_key = os.environ.get(RENAME_VARIABLE, "target")
        arm = spaces.Dict({"vel": spaces.Box(-1.0, 1.0, (2,)), "pos": spaces.Box(-5.0, 5.0, (2, 2))})
        self.observation_space = spaces.Dict({self.target_key: spaces.Box(-1.0, 1.0, ()), "arm": arm})
        self.action_space = spaces.Box(-1.0, 1.0, (2,))

    def _obs(self) -> dict:
        arm = {"pos": self.pos.astype(np.float32), "vel": self.vel.astype(np.float32)}
        return {self.target_key: np.array(self.target, dtype=np.float32), "arm": arm}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-1.0, 1.0, (2, 2))
        self.vel = np.zeros(2)
        self.target = self.np_random.uniform(-1.0, 1.0)
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        self.vel = np.asarray(action, dtype=np.float64)
        self.pos = self.pos + 0.1 * self.vel
        return self._obs(), -float((self.vel[0] - self.target) ** 2), False, False, {}


gym.register(TOY_ID, entry_point=f"{__name__}:DictObsToy", max_episode_steps=TOY_EPISODE)

TOY_LAYOUT = [  # keys sorted at every level, depth first, each box row-major
    {"path": ["arm", "pos"], "shape": [2, 2], "offset": 0},
    {"path": ["arm", "vel"], "shape": [2], "offset": 4},
    {"path": ["target"], "shape": [], "offset": 6},
]


def _toy_flat(raw: dict) -> np.ndarray:
    """The toy's observation flattened by hand in the documented order."""
    return np.concatenate([raw["arm"]["pos"].reshape(-1), raw["arm"]["vel"], [raw["target"]]]).astype(np.float32)


def _script(name: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run scripts/<name>.py with this directory importable (for ``test_registries:...``)."""
    path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, **(env or {})}
    command = [sys.executable, str(SCRIPTS / f"{name}.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)


def _last_line(result: subprocess.CompletedProcess) -> str:
    return (result.stdout + result.stderr).strip().splitlines()[-1]


# ---------------------------------------------------------------------------------------------------------------------
# Dict observations
# ---------------------------------------------------------------------------------------------------------------------


def test_dict_layout_order_and_flattening():
    env = GymVecEnv(TOY_ID, num_envs=2, seed=5, max_episode_steps=3)
    assert env.obs_layout.to_dict()["entries"] == TOY_LAYOUT and env.num_obs == 7
    assert ObsLayout.from_dict(env.obs_layout.to_dict()) == env.obs_layout
    references = [gym.make(TOY_ID) for _ in range(2)]
    raws = [reference.reset(seed=5 + i)[0] for i, reference in enumerate(references)]
    np.testing.assert_array_equal(env.get_observations()["policy"].numpy(), np.stack([_toy_flat(r) for r in raws]))
    actions = torch.tensor([[0.5, -0.5], [-1.0, 1.0]])
    for _ in range(3):  # the third step ends every episode: final_obs holds the flattened last observations
        obs, _, dones, extras = env.step(actions)
        raws = [reference.step(a.numpy())[0] for reference, a in zip(references, actions, strict=True)]
    env.close()
    assert dones.all()
    np.testing.assert_allclose(
        extras["final_obs"]["policy"].numpy(), np.stack([_toy_flat(r) for r in raws]), rtol=1e-6, atol=1e-6
    )
    assert not torch.allclose(obs["policy"], extras["final_obs"]["policy"])  # already the next episodes


def test_unsupported_observation_leaf_names_its_key():
    space = spaces.Dict({"arm": spaces.Dict({"mode": spaces.Discrete(3)}), "pos": spaces.Box(-1.0, 1.0, (2,))})
    with pytest.raises(ConfigError, match=r"observation key 'arm/mode' is Discrete\(3\), which is not supported"):
        ObsLayout.of_space(space, "Toy-v0")


def test_an_observation_missing_a_declared_key_names_it():
    space = spaces.Dict({"arm": spaces.Dict({"pos": spaces.Box(-1.0, 1.0, (2,))}), "vel": spaces.Box(-1.0, 1.0, (1,))})
    layout = ObsLayout.of_space(space, "Toy-v0")
    with pytest.raises(ConfigError, match=r"observation key 'arm/pos' is missing from the environment's observation"):
        layout.flatten({"arm": {}, "vel": np.zeros((2, 1))}, 2)


def test_dict_observations_round_trip_through_train_play_and_export(tmp_path):
    from trudi.rsl_rl import OnPolicyRunner
    from trudi.tasks import train_cfg
    from trudi.workflow import load_checkpoint

    common = ["--task", TOY_TASK, "--log_root", str(tmp_path), "--num_envs", "4"]
    result = _script("train", *common, "--max_iterations", "2", "agent.num_steps_per_env=8")
    assert result.returncode == 0, result.stderr[-2000:]
    result = _script("play", *common, "--checkpoint", "latest", "--episodes", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    (run_dir,) = (tmp_path / "trudidicttoy_trudi").iterdir()
    for saved in (run_dir / "params" / "obs_layout.yaml", run_dir / "exported" / "obs_layout.yaml"):
        assert yaml.safe_load(saved.read_text())["entries"] == TOY_LAYOUT

    # The exports, fed the environment's flattened observations, act as the trained policy does on them.
    env = GymVecEnv(TOY_TASK, num_envs=3, seed=11)
    runner = OnPolicyRunner(env, train_cfg(TOY_TASK, "trudi"), log_dir=None, device="cpu")
    load_checkpoint(runner, str(run_dir / "model_1.pt"), load_cfg={"actor": True})
    policy = runner.get_inference_policy(device="cpu")
    obs = env.get_observations()
    env.close()
    with torch.no_grad():
        expected = policy(obs).numpy()
        jit_actions = torch.jit.load(str(run_dir / "exported" / "policy.pt"))(obs["policy"]).numpy()
    np.testing.assert_allclose(jit_actions, expected, atol=1e-5)
    onnxruntime = pytest.importorskip("onnxruntime")
    session = onnxruntime.InferenceSession(str(run_dir / "exported" / "policy.onnx"))
    name = session.get_inputs()[0].name
    onnx_actions = np.concatenate([session.run(None, {name: row[None].numpy()})[0] for row in obs["policy"]])
    np.testing.assert_allclose(onnx_actions, expected, atol=1e-5)

    # The same sizes in another order would load and act on the wrong inputs: play and resume refuse it in one line.
    for command, flags in (("play", ["--checkpoint", "latest"]), ("train", ["--resume", "--max_iterations", "1"])):
        result = _script(command, *common, *flags, env={RENAME_VARIABLE: "aim"})
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert "observations are laid out unlike the run's" in _last_line(result)
        assert "'aim' shape [] at offset 0 here, 'arm/pos' shape [2, 2] at offset 0 in the run" in _last_line(result)


# ---------------------------------------------------------------------------------------------------------------------
# Registries: module:EnvId and the plugin registries
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ("no_such_module:Foo-v0", "module 'no_such_module', which should register 'Foo-v0', cannot be imported"),
        (f"{__name__}:NoSuch-v0", f"importing '{__name__}' registers no Gymnasium id 'NoSuch-v0'"),
    ],
)
def test_bad_module_ids_fail_in_one_line(tmp_path, task, message):
    result = _script("train", "--task", task, "--log_root", str(tmp_path))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert message in _last_line(result)


def test_missing_plugin_names_the_extra(tmp_path):
    # As if neither shimmy nor dm_control were installed (whether or not they are): None in sys.modules hides them.
    code = (
        "import runpy, sys; sys.modules['shimmy'] = sys.modules['dm_control'] = None;"
        f" sys.argv = ['train.py', '--task', 'dm_control/walker-walk-v0', '--log_root', {str(tmp_path)!r}];"
        f" runpy.run_path({str(SCRIPTS / 'train.py')!r}, run_name='__main__')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert _last_line(result) == (
        "[trudi] --task='dm_control/walker-walk-v0' needs shimmy, dm_control, not installed here:"
        ' `pip install -e ".[dmc]"`.'
    )


def test_dm_control_trains_plays_and_exports(tmp_path):
    pytest.importorskip("shimmy")
    pytest.importorskip("dm_control")
    common = ["--task", "dm_control/cartpole-swingup-v0", "--log_root", str(tmp_path), "--num_envs", "2"]
    result = _script("train", *common, "--max_iterations", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    result = _script("play", *common, "--checkpoint", "latest", "--episodes", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "deterministic policy: mean return" in result.stdout
    (run_dir,) = (tmp_path / "dm_control_cartpole_swingup_trudi").iterdir()
    assert (run_dir / "exported" / "policy.pt").is_file() and (run_dir / "exported" / "policy.onnx").is_file()
    layout = yaml.safe_load((run_dir / "params" / "obs_layout.yaml").read_text())
    assert layout["entries"] == [
        {"path": ["position"], "shape": [3], "offset": 0},
        {"path": ["velocity"], "shape": [2], "offset": 3},
    ]


# ---------------------------------------------------------------------------------------------------------------------
# Quiet play
# ---------------------------------------------------------------------------------------------------------------------


def test_play_prints_no_warnings(tmp_path):
    # The ONNX exporter logs that torchvision is missing and torch's pytree warns about itself; play filters both.
    result = _script("train", "--log_root", str(tmp_path), "--max_iterations", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    result = _script("play", "--log_root", str(tmp_path), "--checkpoint", "latest")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = (result.stdout + result.stderr).splitlines()
    assert [line for line in lines if "Warning" in line or "torchvision" in line] == []
    assert any("exported" in line for line in lines)
