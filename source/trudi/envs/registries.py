"""Loading the Gymnasium registry that defines a task id: ``module:EnvId`` and the common plugin registries.

Gymnasium 1.x registers third-party environments only when the package that defines them is imported: ``gym.make``
imports ``module`` for an id written ``module:EnvId``, and a plugin such as shimmy registers its ids (``dm_control/
...``) on ``import shimmy``. :func:`load_registry` does the same for every TruDi entry point, and also imports the
plugin of a known namespace on its own, so that ``--task dm_control/walker-walk-v0`` works as it is written.
Gymnasium is imported lazily, as everywhere in :mod:`trudi.envs`.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from dataclasses import dataclass

from trudi.config import ConfigError


@dataclass(frozen=True)
class PluginRegistry:
    """A package that registers the Gymnasium ids of one namespace when it is imported."""

    module: str
    """The module whose import registers the ids."""
    requires: tuple[str, ...]
    """Every top-level package the ids need; the module alone may import but register nothing without them."""
    install: str
    """The command that installs them."""
    example: str
    """One id of the namespace, for error messages."""


PLUGIN_REGISTRIES: dict[str, PluginRegistry] = {
    # shimmy registers dm_control's suite only when dm_control imports, so both packages are required.
    "dm_control": PluginRegistry(
        module="shimmy",
        requires=("shimmy", "dm_control"),
        install='pip install -e ".[dmc]"',
        example="dm_control/cartpole-swingup-v0",
    ),
}
"""Plugin registries by Gymnasium namespace (the part of an id before ``/``), loaded when one of their ids is named."""


def split_task(task: str) -> tuple[str | None, str]:
    """``(module, env_id)`` of ``module:EnvId``, Gymnasium's own syntax; ``(None, task)`` for a plain id."""
    module, colon, env_id = task.partition(":")
    return (module, env_id) if colon else (None, task)


def plugin_of(env_id: str) -> PluginRegistry | None:
    """The plugin registry of ``env_id``'s namespace, or ``None`` when it has none in :data:`PLUGIN_REGISTRIES`."""
    namespace, slash, _ = env_id.partition("/")
    return PLUGIN_REGISTRIES.get(namespace) if slash else None


def load_registry(task: str) -> str:
    """Import what registers ``task`` and return its plain Gymnasium id (``task`` without a ``module:`` part).

    ``module:EnvId`` imports ``module``; an id in a namespace of :data:`PLUGIN_REGISTRIES` imports its plugin. Whether
    the id is then registered is the caller's check. Raises a one-line :class:`ConfigError` when the module cannot be
    imported or the plugin's packages are not installed, naming the task and what to install.
    """
    module, env_id = split_task(task)
    if module is not None:
        if not module or not env_id:
            raise ConfigError(
                f"--task={task!r} is invalid: expected <module>:<EnvId>, e.g. shimmy:dm_control/cartpole-swingup-v0."
            )
        try:
            _import(module)
        except ImportError as error:
            raise ConfigError(
                f"--task={task!r} is invalid: module {module!r}, which should register {env_id!r}, cannot be imported"
                f" ({error}); install the package that provides it."
            ) from None
    plugin = plugin_of(env_id)
    if plugin is not None:
        missing = [name for name in plugin.requires if importlib.util.find_spec(name) is None]
        if missing:
            raise ConfigError(f"--task={task!r} needs {', '.join(missing)}, not installed here: `{plugin.install}`.")
        _import(plugin.module)
    return env_id


def _import(module: str) -> None:
    """Import a module that registers environments."""
    with warnings.catch_warnings():
        # dm_control (imported by shimmy) loads GLFW first and warns on a headless machine before it falls back to
        # EGL or OSMesa; training never renders, so the warning says nothing about the run.
        warnings.filterwarnings("ignore", message=r".*The DISPLAY environment variable is missing")
        importlib.import_module(module)
