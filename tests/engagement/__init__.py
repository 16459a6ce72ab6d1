"""Tests of the Kafka engagement pipeline (real Kafka, Redis and chDB)."""
