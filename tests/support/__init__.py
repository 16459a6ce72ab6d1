"""What every test folder imports: the CLI run as a subprocess, the Event Hubs feeder."""
