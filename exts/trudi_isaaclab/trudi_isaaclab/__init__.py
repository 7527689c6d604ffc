"""TruDi for Isaac Lab: TruDi agent configs on the standard task registry, and the train/play workflow.

The agent key is ``rsl_rl_trudi_cfg_entry_point``; ``scripts/train.py`` and ``scripts/play.py`` drive the workflow.
Importing this package has no side effect; ``trudi_isaaclab.tasks`` (the ``isaaclab.tasks`` entry point) registers.
"""
