"""The schema probe behind /health/ready/: down while a migration is unapplied or the database
cache's table is missing, judged at most every few seconds."""

import time

import pytest
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

from monitoring import probes


@pytest.fixture(autouse=True)
def fresh_verdict():
    probes.forget_schema()
    yield
    probes.forget_schema()


def test_a_migrated_database_with_its_cache_table_is_ok(db):
    assert probes.schema().status == probes.OK


def test_an_unapplied_migration_is_down(db):
    MigrationRecorder(connection).record_unapplied("sessions", "0001_initial")  # rolled back after the test
    probe = probes.schema()
    assert probe == probes.Probe(probes.DOWN, "1 unapplied migration(s): run manage.py migrate")


def test_a_missing_cache_table_is_down(db):
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE fortune_cache")  # rolled back after the test
    assert probes.schema() == probes.Probe(probes.DOWN, "cache table missing: run manage.py migrate")


def test_the_verdict_is_reused_for_a_few_seconds(db):
    now = [1000.0]
    assert probes.schema(clock=lambda: now[0]).status == probes.OK
    MigrationRecorder(connection).record_unapplied("sessions", "0001_initial")
    now[0] += probes.SCHEMA_TTL - 1
    assert probes.schema(clock=lambda: now[0]).status == probes.OK
    now[0] += 1
    assert probes.schema(clock=lambda: now[0]).status == probes.DOWN


def test_a_fresh_judgement_is_fast(db):
    probes.schema()  # imports the migration modules once per process
    probes.forget_schema()
    started = time.monotonic()
    probes.schema()
    assert time.monotonic() - started < 2.0  # measured ~40 ms; generous for a busy CI machine
