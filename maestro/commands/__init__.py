"""The commands of ``maestro``, one module per area; maestro.cli wires them into the app."""
