"""analysis command-line commands (filled in by their issue)."""

COMMANDS: list = []
