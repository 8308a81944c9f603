"""Benchmarks: ``make bench`` (``python -m bench``). Each bench/bench_*.py has ``run()`` returning rows
(name, value, baseline, ratio, unit); the baseline is measured in the same run, so the ratio is what to compare
across machines and commits."""
