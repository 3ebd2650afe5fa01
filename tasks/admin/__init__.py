"""The operator's admin for the task core (docs/admin.md): projects and tokens, big tasks with their
mtasks, scenes (with their ROIs) and subtasks, storage configs, video channels, v2 batches.

Every write that has a service function goes through it (tasks.services, subtasks.services): the
admin validates a form, hands the service the same plain spec an API would, and reports what the
service answered (each subtask's Outcome) in the admin's messages. A refusal (ServiceError) is an
error message, never a 500. Lists are read with annotations and select_related: no query per row.
One module per group of ModelAdmins; importing them registers them.
"""

from tasks.admin import batches, big_tasks, projects, scenes, sources

__all__ = ["batches", "big_tasks", "projects", "scenes", "sources"]
