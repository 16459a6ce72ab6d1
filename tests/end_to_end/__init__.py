"""End to end with the dev host and the real function app."""
