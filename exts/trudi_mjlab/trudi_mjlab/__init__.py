"""TruDi for mjlab: ``-TruDi`` variants of mjlab's tasks, registered by :mod:`trudi_mjlab.tasks` via ``mjlab.tasks``."""
