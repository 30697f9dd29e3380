"""Feature store: definitions, offline Parquet store, point-in-time joins, online store."""
