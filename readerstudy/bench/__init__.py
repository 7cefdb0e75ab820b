"""Load generation for `make bench-load`: measurement, not runtime."""
