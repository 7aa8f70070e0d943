"""Bench-only Django pieces: a trivial view and a deliberately blocking one, and a query counter.

Used only by `bench/run` (DJANGO_SETTINGS_MODULE=bench.site.settings); nothing in the product's
settings or URLs refers to this package (tests/test_bench_site.py checks that).
"""
