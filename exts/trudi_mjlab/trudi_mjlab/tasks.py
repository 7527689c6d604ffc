"""Entry point of the ``mjlab.tasks`` group: mjlab imports it while ``import mjlab`` runs.

Registering here, at import, is what the entry point is for; the variants and their configs are built in
:mod:`trudi_mjlab.registration`, as the Isaac Lab extension's are in ``trudi_isaaclab.registration``.
"""

from trudi_mjlab.registration import register_trudi_tasks

register_trudi_tasks()
