"""triplegain: a multi-agent LLM trading coordinator (see DESIGN.md and README.md)."""

__version__ = "0.1.0"
