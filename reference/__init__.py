"""Independent computations of what the pipeline should produce, for tests and benchmarks to compare with."""
