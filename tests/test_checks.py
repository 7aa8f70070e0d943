from monitoring.checks import check_cache, check_cluster, check_stage_timeouts


def ids(messages):
    return [m.id for m in messages]


def test_the_shipped_configuration_passes(settings):
    assert check_cluster(None) == [] and check_cache(None) == []


def test_it_refuses_a_retry_not_above_twice_the_timeout(settings):
    settings.Q_CLUSTER = settings.Q_CLUSTER | {"timeout": 60, "retry": 90}
    assert ids(check_cluster(None)) == ["monitoring.E001"]


def test_it_refuses_a_float_timeout(settings):
    settings.Q_CLUSTER = settings.Q_CLUSTER | {"timeout": 60.5}
    assert ids(check_cluster(None)) == ["monitoring.E003"]


def test_it_refuses_a_per_process_cache(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert ids(check_cache(None)) == ["monitoring.E002"]


def test_it_warns_about_a_queue_limit_far_above_the_workers(settings):
    settings.Q_CLUSTER = settings.Q_CLUSTER | {"queue_limit": 50}
    assert ids(check_cluster(None)) == ["monitoring.W001"]


def test_it_warns_when_a_stage_limit_cannot_matter(settings):
    settings.RAG_TIMEOUT = settings.TASK_TIMEOUT
    assert ids(check_stage_timeouts(None)) == ["monitoring.W002"]
