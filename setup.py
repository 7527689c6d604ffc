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
    "export": ["onnx", "onnxscript>=0.5.4", "onnxruntime"],
    "dev": ["pytest", "ruff", "matplotlib", "onnxruntime"],
}

setup(
    name="trudi",
    version="0.1.0",
    description="Trust-region diffusion policies for massively parallel on-policy RL, as an RSL-RL plug-in.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.10",
    package_dir={"": "source"},
    packages=find_packages(where="source"),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
)
