"""URL wiring: the admin, the native API, the OpenAPI schema and its Swagger UI."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from vias.lib.envelopes import dialect_for_path, error_response

urlpatterns = [
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),  # the admin's language switch (set_language)
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/schema/swagger-ui/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api-auth/", include("rest_framework.urls")),
    path("", include("tasks.api.urls")),
    path("", include("subtasks.api.urls")),
    path("", include("analysis.api.urls")),
    path("", include("tasks.api.vcs.urls")),
    path("", include("tasks.api.v2.urls")),
    path("", include("tasks.api.ws.urls")),
]

# MEDIA_ROOT (event snapshots) is never served as static files, not even with DEBUG: snapshots
# leave only through GET /events/{id}/snapshot, which checks the project (analysis/api/views.py).


def handler404(request, exception=None):
    return error_response(dialect_for_path(request.path), 404, "not found")


def handler500(request):
    return error_response(dialect_for_path(request.path), 500, "internal error")
