"""Atomic file writes: a kill during a write never leaves a half-written file behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import IO, Any

import torch


def atomic_write(path: str, write: Callable[[IO], Any], text: bool = False) -> None:
    """Call ``write`` on a temporary file in the target directory, fsync it, then rename it over ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temp_path = tempfile.mkstemp(prefix=".tmp_", suffix=os.path.splitext(path)[1], dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") if text else os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_path, path)
    except BaseException:
        if os.path.exists(temp_path):
            os.remove(temp_path)
        raise


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically."""
    atomic_write(path, lambda file: torch.save(obj, file))


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda file: file.write(text), text=True)
