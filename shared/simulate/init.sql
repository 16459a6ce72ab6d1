-- Source database of the engagement pipeline's CDC path: Postgres -> Debezium (infra/local/debezium/
-- connector.json) -> content.flat / engagement_events.flat -> the engagement functions.
--
-- docker-compose.yml mounts this file in /docker-entrypoint-initdb.d: the postgres image runs it once, as the
-- superuser, on a new data volume. Every statement is idempotent, so it can also be run again by hand:
--   psql -v ON_ERROR_STOP=1 -U app -d appdb -f infra/local/postgres/init.sql
-- The two tables are the ones `streamduck simulate --target postgres` writes, and creates when missing with
-- the CREATE TABLE statements below: this file is their one definition. The package ships a copy,
-- shared/simulate/init.sql, which tests/test_package_data.py keeps identical to this file (edit this one, then
-- copy it there).

CREATE TABLE IF NOT EXISTS content (
  id UUID PRIMARY KEY,
  slug TEXT UNIQUE NOT NULL,
  title TEXT NOT NULL,
  content_type TEXT CHECK (content_type IN ('podcast','newsletter','video')),
  length_seconds INTEGER,
  publish_ts TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS engagement_events (
  id BIGSERIAL PRIMARY KEY,
  content_id UUID REFERENCES content(id),
  user_id UUID,
  event_type TEXT CHECK (event_type IN ('play','pause','finish','click')),
  event_ts TIMESTAMPTZ NOT NULL,
  duration_ms INTEGER,
  device TEXT,
  raw_payload JSONB
);

-- Deletes carry the whole old row, not only the primary key: the connector rewrites a delete into the
-- deleted row with __op = d (delete.handling.mode=rewrite), and the decoder needs content_id, event_type and
-- event_ts of a deleted engagement (ValueToKey keys it by content_id) to remove it everywhere.
ALTER TABLE content REPLICA IDENTITY FULL;
ALTER TABLE engagement_events REPLICA IDENTITY FULL;

-- Debezium's login: replication (the logical slot) and read access (the initial snapshot), nothing else.
DO $$
BEGIN
  CREATE ROLE dbz WITH LOGIN REPLICATION PASSWORD 'dbz';
EXCEPTION WHEN duplicate_object THEN
  ALTER ROLE dbz WITH LOGIN REPLICATION PASSWORD 'dbz';
END
$$;
GRANT USAGE ON SCHEMA public TO dbz;
GRANT SELECT ON content, engagement_events TO dbz;

-- The connector uses this publication as is (publication.autocreate.mode=disabled).
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'dbz_publication') THEN
    CREATE PUBLICATION dbz_publication FOR TABLE content, engagement_events;
  END IF;
END
$$;
