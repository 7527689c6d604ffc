"""Set-up shared by every test process, tests/isaaclab and tests/mjlab included: torch runs on one thread.

The suite runs on a 2-core machine beside other work. With torch's default of one thread per core, one other busy
process made the suite take 26 minutes instead of about 4: the threads of a parallel region wait for each other on
cores that are taken. The thread variables are set when pytest imports this file, before any test module imports
torch, so the processes the tests start (scripts/train.py, Isaac Lab's and mjlab's entry points) inherit them too.
"""

from __future__ import annotations

import contextlib
import os

for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import torch  # noqa: E402  (after the variables, which torch's thread pools read when they start)

torch.set_num_threads(1)
# Allowed only before the first inter-op parallel work of the process, which a plugin may already have started.
with contextlib.suppress(RuntimeError):
    torch.set_num_interop_threads(1)
