"""triplegain: a multi-agent LLM trading coordinator (see README.md and docs/ARCHITECTURE.md)."""

__version__ = "0.1.0"
