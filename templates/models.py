"""Models of the templates app (none yet)."""
