"""OpenTelemetry metrics: the catalog of what StreamDuck emits (a low layer every package may import)."""
