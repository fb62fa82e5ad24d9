"""Models of the canary app (none yet)."""
