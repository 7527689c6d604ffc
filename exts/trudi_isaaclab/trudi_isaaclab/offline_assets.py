"""Builds a local Isaac asset root for Isaac-Cartpole, Isaac-Ant and Isaac-Humanoid without NVIDIA's asset server.

Isaac Lab loads robot and ground USDs from ``$ISAACSIM_ASSET_ROOT/Isaac/...`` (by default a remote server). The
``newton`` wheel that Isaac Lab 3 depends on ships structurally equivalent USDs; this module copies them into the
paths the task configs ask for, with the few fixes they need. They are stand-ins with the same joint names, fine for
tests and for TruDi-vs-PPO comparisons on equal terms, not for matching published rewards.
"""

from __future__ import annotations

import os

CARTPOLE = "Isaac/IsaacLab/Robots/Classic/Cartpole/cartpole.usd"
ANT = "Isaac/Robots/IsaacSim/Ant/ant_instanceable.usd"
HUMANOID = "Isaac/Robots/IsaacSim/Humanoid/humanoid_instanceable.usd"
GROUND_PLANE = "Isaac/IsaacLab/Environments/Grid/default_ground_plane_checker_v1/default_ground_plane.usda"

HUMANOID_JOINT_RENAMES = {
    "abdomen_x": "pelvis",
    "left_knee": "left_shin",
    "right_knee": "right_shin",
    "left_elbow": "left_lower_arm",
    "right_elbow": "right_lower_arm",
}
"""Newton's humanoid names five revolute joints differently from the humanoid Isaac-Humanoid's config expects."""


def _newton_asset(name: str) -> str:
    import newton.examples

    return os.path.join(os.path.dirname(newton.examples.__file__), "assets", name)


def _export(usda_text: str, path: str) -> None:
    """Write USD text to ``path`` (crate format when it ends in ``.usd``)."""
    from pxr import Sdf

    os.makedirs(os.path.dirname(path), exist_ok=True)
    layer = Sdf.Layer.CreateAnonymous(".usda")
    layer.ImportFromString(usda_text)
    if not layer.Export(path):
        raise OSError(f"could not write {path}")


def _write_ground_plane(path: str) -> None:
    from pxr import Usd, UsdGeom, UsdPhysics

    os.makedirs(os.path.dirname(path), exist_ok=True)
    stage = Usd.Stage.CreateNew(path)
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    root = UsdGeom.Xform.Define(stage, "/GroundPlane")
    stage.SetDefaultPrim(root.GetPrim())
    plane = UsdGeom.Plane.Define(stage, "/GroundPlane/CollisionPlane")
    plane.CreateAxisAttr("Z")
    plane.CreateWidthAttr(100.0)
    plane.CreateLengthAttr(100.0)
    UsdPhysics.CollisionAPI.Apply(plane.GetPrim())
    stage.GetRootLayer().Save()


def build_asset_root(out_dir: str) -> list[str]:
    """Write the asset root under ``out_dir``; returns the files written. Set ``ISAACSIM_ASSET_ROOT=out_dir``."""
    with open(_newton_asset("cartpole_single_pendulum.usda"), encoding="utf-8") as file:
        # A flattened copy of Isaac Lab's cartpole; only its defaultPrim does not name its root prim.
        cartpole = file.read().replace('defaultPrim = "cartPole"', 'defaultPrim = "cartpole"')
    with open(_newton_asset("ant.usda"), encoding="utf-8") as file:
        ant = file.read()
    with open(_newton_asset("humanoid.usda"), encoding="utf-8") as file:
        humanoid = file.read()
    for old, new in HUMANOID_JOINT_RENAMES.items():
        humanoid = humanoid.replace(f'def PhysicsRevoluteJoint "{old}"', f'def PhysicsRevoluteJoint "{new}"')

    written = []
    for relative, text in ((CARTPOLE, cartpole), (ANT, ant), (HUMANOID, humanoid)):
        _export(text, os.path.join(out_dir, relative))
        written.append(relative)
    _write_ground_plane(os.path.join(out_dir, GROUND_PLANE))
    written.append(GROUND_PLANE)
    return written
