"""List the tasks TruDi can train: the embedded ones, and with Isaac Lab installed every task with a TruDi config.

Usage: ``python scripts/list_tasks.py``
"""

from __future__ import annotations

from trudi.tasks import TASKS, isaaclab_installed


def main() -> None:
    """Print the embedded tasks, then the Isaac Lab tasks (marking the hand-tuned ones)."""
    print("Embedded tasks (no Isaac Lab needed):")
    for name, task in TASKS.items():
        print(f"  {name:<24} {task.description}")
    if not isaaclab_installed():
        print("Isaac Lab is not installed here: no Isaac Lab tasks.")
        return
    import trudi_isaaclab.tasks  # noqa: F401  (registers the TruDi agent key)
    from trudi_isaaclab.registration import TASK_TUNING, TRUDI_ENTRY_POINT, tasks_with_trudi

    tasks = tasks_with_trudi()
    print(f"Isaac Lab tasks with '{TRUDI_ENTRY_POINT}' ({len(tasks)}; * = hand-set values, others derived from PPO):")
    for task in tasks:
        print(f"  {'*' if task in TASK_TUNING else ' '} {task}")


if __name__ == "__main__":
    main()
