"""Installation script for TruDi: the simulator-free core lives in ``source/trudi``."""

from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    # torch is deliberately unpinned above 2.6: install the build you want (CPU or CUDA) first,
    # otherwise pip pulls the default CUDA wheel.
    "torch>=2.6",
    "tensordict>=0.7",
    "rsl-rl-lib>=5.4.2,<6",
    "omegaconf>=2.3",
    "numpy",
]

EXTRAS_REQUIRE = {
    "gym": ["gymnasium[mujoco]>=1.0"],
    # DeepMind Control's suite as Gymnasium ids (dm_control/<domain>-<task>-v0), registered by shimmy. About 110 MB of
    # downloads and 300 MB installed (dm_control, scipy, h5py, labmaze, lxml), so CI's main venv does not install it.
    "dmc": ["shimmy[dm-control]>=2.0,<3"],
    "export": ["onnx", "onnxscript>=0.5.4", "onnxruntime"],
    "dev": ["pytest", "ruff", "matplotlib", "onnxruntime"],
    # The simulator extensions. Both pin their own torch and rsl-rl-lib; install them in their own venvs
    # (Isaac Lab 3.x needs Python 3.12), see docs/isaaclab.md.
    "isaaclab": ["isaaclab>=3.0,<4"],
    "mjlab": ["mjlab>=1.6,<2"],
}

# Each simulator extension is a package of its own under exts/, found through its simulator's entry point.
PACKAGE_DIRS = {
    "trudi_isaaclab": "exts/trudi_isaaclab/trudi_isaaclab",
    "trudi_mjlab": "exts/trudi_mjlab/trudi_mjlab",
}
ENTRY_POINTS = {
    "isaaclab.tasks": ["trudi = trudi_isaaclab.tasks"],
    "mjlab.tasks": ["trudi = trudi_mjlab.tasks"],
}

setup(
    name="trudi",
    version="0.1.0",
    description="Trust-region diffusion policies for massively parallel on-policy RL, as an RSL-RL plug-in.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.10",
    package_dir={"": "source", **PACKAGE_DIRS},
    packages=find_packages(where="source") + list(PACKAGE_DIRS),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points=ENTRY_POINTS,
)
