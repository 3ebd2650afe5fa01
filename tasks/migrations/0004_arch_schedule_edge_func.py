"""The window-edge function moved from tasks.schedules to subtasks.services (one start/stop)."""

from django.db import migrations

OLD, NEW = "tasks.schedules.run_edge", "subtasks.services.run_edge"


def forwards(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(func=OLD).update(func=NEW)


def backwards(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(func=NEW).update(func=OLD)


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0003_v2_output_schedule_batch"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
