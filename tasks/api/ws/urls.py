from django.urls import re_path

from tasks.api.ws import views

urlpatterns = [
    re_path(r"^wsapi/address/?$", views.WsAddress.as_view(), name="ws-address"),
]
