"""Event Hubs -> MotherDuck / DuckDB ingestion with exactly-once effect."""

from shared.eventhubs.ingest import EventHubIngestor, default_ingestor

__all__ = ["EventHubIngestor", "default_ingestor"]
