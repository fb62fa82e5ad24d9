"""Models of the executions app (none yet)."""
