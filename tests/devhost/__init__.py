"""The dev host: its Kafka and Event Hubs sources, retries, commits and lag reports."""
