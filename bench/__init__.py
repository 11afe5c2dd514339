"""On-demand benchmarks of certaudit (not part of `make test`); see bench/README.md."""
