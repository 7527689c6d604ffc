"""RSL-RL's stock ``OnPolicyRunner`` with atomic checkpoint writes; it runs PPO and TruDi alike."""

from __future__ import annotations

from rsl_rl.runners import OnPolicyRunner as RslRlOnPolicyRunner

from trudi.checkpoint import atomic_torch_save


class OnPolicyRunner(RslRlOnPolicyRunner):
    """The stock runner; only :meth:`save` differs: it writes through a temporary file and a rename.

    TruDi itself needs nothing beyond the stock runner (see ``tests/test_plugin.py``); this subclass exists so that
    ``scripts/train.py`` never leaves a corrupt checkpoint when a run is killed mid-save.
    """

    def save(self, path: str, infos: dict | None = None) -> None:
        """Write the algorithm's state, the iteration and ``infos`` to ``path`` atomically."""
        saved_dict = self.alg.save()
        saved_dict["iter"] = self.current_learning_iteration
        saved_dict["infos"] = infos
        atomic_torch_save(saved_dict, path)
        self.logger.save_model(path, self.current_learning_iteration)
