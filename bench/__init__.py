"""Benchmarks (`bench/run`) and the helpers that `chaos/run` shares: a whole system started on
loopback in a scratch directory, load from separate processes, statistics and the report."""
