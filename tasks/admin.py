"""Admin for the task core (the operator's admin issue builds it out)."""

from django.contrib import admin

from tasks.models import ApiToken, MTask, Project, Scene, SceneRoi, StoreConf, Task, VideoChannel


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("project_id", "name", "created_at")
    search_fields = ("project_id", "name")
    filter_horizontal = ("members",)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "name", "user", "project", "created_at", "last_used_at")
    list_select_related = ("user", "project")
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at")


class MTaskInline(admin.StackedInline):
    model = MTask
    extra = 0


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ("task_name", "task_id", "algo_type", "source_type", "project", "create_dt")
    list_select_related = ("project",)
    list_filter = ("algo_type", "source_type")
    search_fields = ("task_name", "task_id")
    inlines = [MTaskInline]


class SceneRoiInline(admin.StackedInline):
    model = SceneRoi
    extra = 0


@admin.register(Scene)
class SceneAdmin(admin.ModelAdmin):
    list_display = ("name", "scene_unid", "algo_type", "vchan_refid")
    inlines = [SceneRoiInline]


@admin.register(StoreConf)
class StoreConfAdmin(admin.ModelAdmin):
    list_display = ("unid", "name", "file_ext", "version", "project", "updated_at")
    list_select_related = ("project",)


@admin.register(VideoChannel)
class VideoChannelAdmin(admin.ModelAdmin):
    list_display = ("vchan_refid", "name", "url", "project")
    list_select_related = ("project",)
    search_fields = ("vchan_refid", "name", "url")
