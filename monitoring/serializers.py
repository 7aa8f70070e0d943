from rest_framework import serializers


class FailureRateSerializer(serializers.Serializer):
    threshold = serializers.FloatField(help_text="percent of failing calls that opens the breaker")
    window_ms = serializers.IntegerField()
    min_calls = serializers.IntegerField()
    calls = serializers.IntegerField()
    failures = serializers.IntegerField()


class CacheHealthSerializer(serializers.Serializer):
    ok = serializers.BooleanField(help_text="whether the shared state could be read just now")
    # DRF's metaclass moves declared fields off the class: this never hides Serializer.errors at runtime.
    errors = serializers.IntegerField(  # type: ignore[assignment]
        help_text="cache errors seen by the answering process"
    )
    last_error = serializers.CharField(allow_null=True)
    last_error_at = serializers.CharField(allow_null=True)


class BreakerSerializer(serializers.Serializer):
    """A breaker snapshot (fortune_project.resilience.breakers.Breaker.snapshot); documents the response shape."""

    name = serializers.CharField()
    state = serializers.ChoiceField(["closed", "open", "half_open", "forced_open", "disabled"])
    failures = serializers.IntegerField()
    failure_threshold = serializers.IntegerField()
    recovery_timeout = serializers.IntegerField(help_text="milliseconds, like every duration in the API")
    opened_at = serializers.CharField(allow_null=True)
    retry_at = serializers.CharField(allow_null=True)
    last_failure = serializers.CharField(allow_null=True)
    last_change = serializers.CharField(allow_null=True)
    last_error = serializers.CharField(allow_null=True)
    reason = serializers.CharField(allow_null=True)
    changed_by = serializers.CharField(allow_null=True)
    generation = serializers.IntegerField()
    half_open_calls = serializers.IntegerField()
    probe_timeout_ms = serializers.IntegerField(help_text="how long half_open waits for its trials")
    slow_call_ms = serializers.IntegerField(allow_null=True, help_text="a slower call counts as a failure")
    failure_rate = FailureRateSerializer(allow_null=True)
    cache = CacheHealthSerializer()


class BreakerActionSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200)
