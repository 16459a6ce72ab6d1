"""The local change data capture files: Postgres init.sql and the Debezium connector."""
