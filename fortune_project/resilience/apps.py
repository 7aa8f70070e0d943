from django.apps import AppConfig


class ResilienceConfig(AppConfig):
    name = "fortune_project.resilience"
    label = "resilience"
    verbose_name = "Resilience"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the breaker configuration check (fortune_project.resilience.breaker_config).
        from fortune_project.resilience import breaker_config  # noqa: F401
