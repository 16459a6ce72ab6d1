CREATE VIEW IF NOT EXISTS {db}.{minute_view} AS
SELECT
    toStartOfMinute(event_ts) AS minute,
    content_id,
    count() AS events,
    countIf(NOT content_known) AS unknown_content_events,
    uniqExact(user_id) AS users,
    sum(engagement_seconds) AS engagement_seconds,
    avg(engagement_pct) AS avg_engagement_pct,
    any(title) AS title
FROM {db}.{enriched} FINAL
GROUP BY minute, content_id
