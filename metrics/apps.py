from django.apps import AppConfig


class MetricsConfig(AppConfig):
    """Django face of the metrics package: the MetricValue model and the Celery tasks.

    The computing cores (metrics.io, metrics.image, ...) never import Django.
    """

    name = "metrics"
    verbose_name = "Image-quality metrics"
