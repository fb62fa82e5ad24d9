"""Models of the policy app (none yet)."""
