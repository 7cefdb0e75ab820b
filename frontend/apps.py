from django.apps import AppConfig


class FrontendConfig(AppConfig):
    """Templates and static files (project CSS/JS, vendored viewer and plotting bundles)."""

    name = "frontend"
