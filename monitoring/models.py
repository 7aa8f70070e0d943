"""The operations admin's handles on the breaker log. The model lives in the resilience library
(fortune_project.resilience); these proxies keep the admin's pages under "Monitoring"."""

from fortune_project.resilience import models as resilience


class BreakerEvent(resilience.BreakerEvent):
    """The transition log, as the operations admin lists it."""

    class Meta:
        proxy = True


class CircuitBreaker(resilience.BreakerEvent):
    """Admin handle for the live breakers (their state lives in the cache, not in a table)."""

    class Meta:
        proxy = True
        verbose_name = "circuit breaker"
