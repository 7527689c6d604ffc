"""The layout of the one observation vector an embedded task gives RSL-RL: which key lands at which offset.

Many Gymnasium environments observe a ``Dict`` of boxes (DeepMind Control through shimmy, goal-conditioned tasks).
RSL-RL's models take one flat vector per observation group, so :class:`ObsLayout` flattens a ``Box`` or a (nested)
``Dict`` of boxes in one fixed order, :data:`ORDER`. The layout is saved with the run (``params/obs_layout.yaml``) and
beside the exported policy, so that play, the exports and a deployment feed the networks the same order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from trudi.config import ConfigError

ORDER = "keys sorted at every level, depth first; each Box flattened in row-major (C) order"
"""The flattening rule, written into every saved layout."""


@dataclass(frozen=True)
class ObsEntry:
    """One box of the observation: where it comes from and where it lands in the vector."""

    path: tuple[str, ...]
    """Keys from the top-level ``Dict`` down to the box; empty for a plain ``Box`` observation."""
    shape: tuple[int, ...]
    """The box's shape."""
    offset: int
    """Index of its first element in the observation vector."""

    @property
    def size(self) -> int:
        """Number of elements: ``prod(shape)``."""
        return int(np.prod(self.shape, dtype=np.int64))

    def name(self) -> str:
        """The key path written ``a/b`` (``<obs>`` for a plain ``Box``), for messages."""
        return "/".join(self.path) or "<obs>"


@dataclass(frozen=True)
class ObsLayout:
    """The boxes of an observation in :data:`ORDER`, with their offsets in the flat vector."""

    entries: tuple[ObsEntry, ...]

    @property
    def size(self) -> int:
        """Length of the flat observation vector."""
        return sum(entry.size for entry in self.entries)

    @classmethod
    def of_shape(cls, shape: tuple[int, ...]) -> ObsLayout:
        """The layout of a plain ``Box`` observation of ``shape``."""
        return cls((ObsEntry((), tuple(int(n) for n in shape), 0),))

    @classmethod
    def of_space(cls, space: Any, task: str) -> ObsLayout:
        """The layout of a Gymnasium ``Box`` or (nested) ``Dict`` of boxes; anything else is a one-line ConfigError."""
        from gymnasium import spaces

        entries: list[ObsEntry] = []

        def visit(node: Any, path: tuple[str, ...]) -> None:
            if isinstance(node, spaces.Box):
                offset = entries[-1].offset + entries[-1].size if entries else 0
                entries.append(ObsEntry(path, tuple(int(n) for n in node.shape), offset))
                return
            if isinstance(node, spaces.Dict) and node.spaces:
                for key in sorted(node.spaces, key=str):
                    visit(node.spaces[key], (*path, str(key)))
                return
            where = f"observation key {'/'.join(path)!r}" if path else "its observation space"
            raise ConfigError(
                f"--task={task!r} is invalid: {where} is {node}, which is not supported; TruDi takes a Box or a"
                " (nested, non-empty) Dict of Box observations."
            )

        visit(space, ())
        return cls(tuple(entries))

    def flatten(self, obs: Any, rows: int) -> np.ndarray:
        """The float32 ``(rows, size)`` matrix of ``obs``: an array, or nested mappings of arrays, with ``rows`` rows.

        ``rows`` is the number of environments for a batched observation and 1 for a single one.
        """
        parts = []
        for entry in self.entries:
            value = obs
            for key in entry.path:
                if not isinstance(value, Mapping) or key not in value:
                    raise ConfigError(
                        f"observation key {entry.name()!r} is missing from the environment's observation, whose space"
                        " declares it."
                    )
                value = value[key]
            parts.append(np.asarray(value, dtype=np.float32).reshape(rows, entry.size))
        return np.concatenate(parts, axis=-1)

    def to_dict(self) -> dict:
        """The layout as plain data for YAML: the order rule, the vector's size and each entry."""
        return {
            "order": ORDER,
            "size": self.size,
            "entries": [
                {"path": list(entry.path), "shape": list(entry.shape), "offset": entry.offset} for entry in self.entries
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> ObsLayout:
        """The inverse of :meth:`to_dict`."""
        return cls(
            tuple(
                ObsEntry(tuple(str(k) for k in item["path"]), tuple(int(n) for n in item["shape"]), int(item["offset"]))
                for item in data["entries"]
            )
        )

    def difference(self, saved: ObsLayout) -> str | None:
        """The first difference to the ``saved`` layout of a run in words (``None`` when equal), for one-line errors."""
        for mine, theirs in zip(self.entries, saved.entries, strict=False):
            if mine != theirs:
                return f"{_describe(mine)} here, {_describe(theirs)} in the run"
        if len(self.entries) > len(saved.entries):
            return f"{_describe(self.entries[len(saved.entries)])} only here"
        if len(self.entries) < len(saved.entries):
            return f"{_describe(saved.entries[len(self.entries)])} only in the run"
        return None


def _describe(entry: ObsEntry) -> str:
    return f"{entry.name()!r} shape {list(entry.shape)} at offset {entry.offset}"
