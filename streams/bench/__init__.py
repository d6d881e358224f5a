"""The benchmark suite (`banwatch bench`): the engine alone, the stream end to end, the naive
baselines, and the synthetic workload they share. Results and their dates: docs/bench.md."""
