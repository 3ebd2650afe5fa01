from django.apps import AppConfig


class ViasConfig(AppConfig):
    """Project wiring as an app, so that its management commands (up, create_token) are found."""

    name = "vias"
    verbose_name = "VIAS"
