"""A Flowfinity REST API simulator: real HTTP, for tests, demos and benchmarks."""
