# The database cache (the default without REDIS_URL) holds breaker state, worker records and the
# cluster's heartbeat. Django makes its table with `createcachetable`, not `migrate`; this runs
# it from `migrate`, so `migrate` alone prepares a database. It skips tables that exist and caches
# that are not database caches, and it does nothing for a database the router keeps them out of.
# A database cache added to CACHES later needs `manage.py createcachetable` (/health/ready/ says so).

from django.core.management import call_command
from django.db import migrations


def create_cache_tables(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [
        ("resilience", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(create_cache_tables, migrations.RunPython.noop, elidable=False),
    ]
