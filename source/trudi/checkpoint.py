"""Atomic checkpoint writes: a kill during a save never leaves a half-written file behind."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import torch


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save`` to a temporary file in the target directory, fsync it, then rename it over ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temp_path = tempfile.mkstemp(prefix=".tmp_", suffix=".pt", dir=directory)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_path, path)
    except BaseException:
        if os.path.exists(temp_path):
            os.remove(temp_path)
        raise
