"""study_server command-line commands (filled in by their issue)."""

COMMANDS: list = []
