# The breaker event log moved here from `monitoring`: only Django's picture of the models moves.
# The table (monitoring_breakerevent) was created by monitoring's 0001 and keeps its name and rows.

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

STATES = [
    ("closed", "Closed"),
    ("open", "Open"),
    ("half_open", "Half Open"),
    ("forced_open", "Forced Open"),
    ("disabled", "Disabled"),
]


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("monitoring", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="BreakerEvent",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("name", models.CharField(max_length=50)),
                        ("from_state", models.CharField(choices=STATES, max_length=20)),
                        ("to_state", models.CharField(choices=STATES, max_length=20)),
                        ("reason", models.CharField(blank=True, max_length=300)),
                        (
                            "who",
                            models.CharField(
                                blank=True, help_text="who acted, e.g. 'bob (api)'; blank = automatic", max_length=150
                            ),
                        ),
                        (
                            "generation",
                            models.PositiveIntegerField(
                                default=0, help_text="the breaker's state number after this change"
                            ),
                        ),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                        (
                            "actor",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "monitoring_breakerevent",
                        "ordering": ["-created_at", "-id"],
                        "indexes": [models.Index(fields=["name", "-created_at"], name="breakerevent_name_time")],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
