"""Benchmarks of the metric engine and the statistics engine (`make bench-metrics`, `make bench-analysis`): measurement, not runtime; nothing at runtime imports them."""
