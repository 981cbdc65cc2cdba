"""The coordinator: consensus, conflicts, resolution, degradation and the portfolio breaker."""
