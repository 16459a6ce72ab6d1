"""Helpers every test folder imports: the CLI as a subprocess, the Event Hubs feeder."""
