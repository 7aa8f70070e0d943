# BreakerEvent moved to the resilience library (fortune_project.resilience). Only the state
# changes: the table stays, and monitoring keeps proxies so the admin's URLs stay the same.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0001_initial"),
        ("resilience", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="CircuitBreaker"),
                migrations.RemoveIndex(model_name="breakerevent", name="breakerevent_name_time"),
                migrations.DeleteModel(name="BreakerEvent"),
                migrations.CreateModel(
                    name="BreakerEvent",
                    fields=[],
                    options={"proxy": True, "indexes": [], "constraints": []},
                    bases=("resilience.breakerevent",),
                ),
                migrations.CreateModel(
                    name="CircuitBreaker",
                    fields=[],
                    options={"verbose_name": "circuit breaker", "proxy": True, "indexes": [], "constraints": []},
                    bases=("resilience.breakerevent",),
                ),
            ],
            database_operations=[],
        ),
    ]
