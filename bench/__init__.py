"""AutoDM's benchmark (`make bench`): see bench/README.md and docs/BENCHMARKS.md."""
