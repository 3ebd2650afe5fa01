"""Admin for subtasks and nodes (the operator's admin issue builds it out)."""

from django.contrib import admin

from subtasks.models import Node, Subtask


@admin.register(Subtask)
class SubtaskAdmin(admin.ModelAdmin):
    list_display = ("id", "task", "position", "state", "config_complete", "progress", "node", "updated_at")
    list_select_related = ("task", "node")
    list_filter = ("state", "config_complete")
    readonly_fields = ("state", "attempts", "heartbeat_at", "started_at", "finished_at")


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = ("name", "hostname", "capacity", "last_heartbeat")
