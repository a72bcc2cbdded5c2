"""Benchmarks: speed targets measured against an anchor in the same run (`make bench-monitor`, `make bench-archive`)."""
