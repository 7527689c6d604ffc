"""Entry point of the ``isaaclab.tasks`` group: Isaac Lab's CLI imports it before it resolves a task.

The CLI loads external task packages before it imports ``isaaclab_tasks``, so the core tasks are imported here
first; only then do they exist to receive the TruDi agent key.
"""

import isaaclab_tasks  # noqa: F401  (registers the core tasks)

from trudi_isaaclab.registration import register_trudi_agents

register_trudi_agents()
