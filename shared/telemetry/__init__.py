"""OpenTelemetry metrics: ``catalog`` (what StreamDuck emits) and ``metrics`` (recording it) form a low layer
every package may import; ``azure`` (Application Insights) and ``local`` (the dev host's readers) install where
the numbers go."""
