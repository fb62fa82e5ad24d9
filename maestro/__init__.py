"""maestro: the command-line client of Maestro Conductor (the CLI itself arrives with its issue)."""

__version__ = "0.1.0"
