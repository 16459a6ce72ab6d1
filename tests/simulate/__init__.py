"""The traffic simulator: its targets and the `simulate` command."""
