"""DuckDB / MotherDuck: connections, table layout, compaction."""
