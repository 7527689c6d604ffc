"""Generate a local Isaac asset root for Isaac-Cartpole, Isaac-Ant and Isaac-Humanoid (no download).

    python scripts/offline_assets.py --out ~/isaac_assets
    export ISAACSIM_ASSET_ROOT=~/isaac_assets

Needs Isaac Lab 3 installed (it brings the ``newton`` wheel whose example USDs are used, and ``pxr``).
"""

from __future__ import annotations

import argparse
import os

from trudi_isaaclab.offline_assets import build_asset_root


def main() -> None:
    """Parse ``--out`` and write the asset root."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="directory to create; point ISAACSIM_ASSET_ROOT at it")
    out_dir = os.path.abspath(os.path.expanduser(parser.parse_args().out))
    for relative in build_asset_root(out_dir):
        print(f"wrote {os.path.join(out_dir, relative)}")
    print(f"export ISAACSIM_ASSET_ROOT={out_dir}")


if __name__ == "__main__":
    main()
