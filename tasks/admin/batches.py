"""VIAS v2 batch tasks (read-only: batches are made through the v2 API)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy

from tasks.models import (
    BatchTask,
)
from vias.lib.admin import TenantAdminMixin


@admin.register(BatchTask)
class BatchTaskAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "batch_id",
        "service_name",
        "service_version",
        "task_total",
        "project",
        "created_at",
    )
    list_select_related = ("project",)
    list_filter = ("project", "service_name")
    search_fields = ("name", "batch_id", "service_name")
    readonly_fields = ("batch_id", "creator", "created_at", "updated_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).annotate(task_n=Count("tasks"))

    @admin.display(description=gettext_lazy("tasks"), ordering="task_n")
    def task_total(self, obj: Any) -> int:
        return obj.task_n

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # batches are made through the VIAS v2 API (tasks.batches.create_batch)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
