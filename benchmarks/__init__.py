"""Commands that print performance figures (``python -m benchmarks.<name>``); never run as tests."""
