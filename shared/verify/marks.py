"""How ``streamduck verify`` marks its test data, so it can be told apart from real data and deleted.

Every run has a run id, ``verify-<UTC time>-<8 hex digits>`` (``verify-20260101T120000Z-1a2b3c4d``). From it:

- Event Hubs: each test event carries the run id in its JSON body (``{"streamduck_verify": "<run id>", ...}``)
  and in the application property :data:`PROPERTY` (``streamduck_verify``), which the mapping tables keep in
  their ``properties`` JSON column (and the dead-letter table in its own), whatever the body format.
- Kafka: the test content id starts with :data:`CONTENT_PREFIX` (``5d5d5d5d-``, a uuid), its slug with
  ``streamduck-verify-`` and its title with ``StreamDuck verify``; the test engagement id is at least
  :data:`ENGAGEMENT_ID_BASE` (9,000,000,000,000,000,000: 19 digits starting with ``90``, far above any
  ``BIGSERIAL`` or simulator id) and its device is ``streamduck-verify``. Both ids are derived from the run id.
- The test engagement's event time lies before the longest leaderboard window the minute buckets can serve
  (:func:`event_time`), so it is counted in a minute bucket that no window (precomputed or ad hoc) ever reads:
  it never enters the real-time top-N, and lies outside the dashboard's last hour.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.settings import Settings, leaderboard_max_window_minutes
from shared.simulate.model import Content, Engagement, iso

PROPERTY = "streamduck_verify"
CONTENT_PREFIX = "5d5d5d5d-"
SLUG_PREFIX = "streamduck-verify-"
TITLE_PREFIX = "StreamDuck verify"
DEVICE = "streamduck-verify"
ENGAGEMENT_ID_BASE = 9_000_000_000_000_000_000
# The test engagement's duration: 4.2 engagement seconds in the leaderboard and in ClickHouse.
DURATION_MS = 4200
LENGTH_SECONDS = 600
# Minutes between the oldest minute any leaderboard window can read and the test event's minute: covers clock
# differences between this machine and the functions, and the minute turning while the event travels.
EVENT_TIME_MARGIN_MINUTES = 5

_ID_NAMESPACE = uuid.UUID("5d5d5d5d-0000-4000-8000-000000000000")


def new_run_id(now: datetime | None = None) -> str:
    at = (now or datetime.now(tz=UTC)).astimezone(UTC)
    return f"verify-{at.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"


def content_id(run_id: str) -> str:
    """The run's test content id: a uuid whose first group is ``5d5d5d5d``."""
    derived = str(uuid.uuid5(_ID_NAMESPACE, run_id))
    return CONTENT_PREFIX + derived[len(CONTENT_PREFIX) :]


def engagement_id(run_id: str) -> int:
    """The run's test engagement id: :data:`ENGAGEMENT_ID_BASE` plus 56 bits derived from the run id."""
    digest = hashlib.blake2b(run_id.encode(), digest_size=7).digest()
    return ENGAGEMENT_ID_BASE + int.from_bytes(digest, "big")


def event_time(settings: Settings, now: datetime) -> datetime:
    """The test engagement's event time: before every minute any leaderboard window can read.

    A window of ``W`` minutes read during minute ``m`` covers minutes ``m - W .. m - 1``, and ``W`` is at most
    ``(LEADERBOARD_BUCKET_TTL_SECONDS - 60) // 60``; the event's minute is earlier than that by
    :data:`EVENT_TIME_MARGIN_MINUTES`, and every later minute reads even later buckets.
    """
    longest = leaderboard_max_window_minutes(settings.leaderboard_bucket_ttl_seconds)
    minute = now.astimezone(UTC).replace(second=0, microsecond=0)
    return minute - timedelta(minutes=longest + 1 + EVENT_TIME_MARGIN_MINUTES)


@dataclass(frozen=True)
class RunMarks:
    """Everything that identifies one run's test data."""

    run_id: str
    started: datetime
    content: Content
    engagement: Engagement

    @classmethod
    def new(cls, settings: Settings, now: datetime | None = None) -> RunMarks:
        at = (now or datetime.now(tz=UTC)).astimezone(UTC)
        run_id = new_run_id(at)
        cid = content_id(run_id)
        content = Content(
            id=cid,
            slug=f"{SLUG_PREFIX}{run_id.removeprefix('verify-').lower()}",
            title=f"{TITLE_PREFIX} {run_id}",
            content_type="video",
            length_seconds=LENGTH_SECONDS,
            publish_ts=at,
        )
        engagement = Engagement(
            id=engagement_id(run_id),
            content_id=cid,
            user_id=str(uuid.uuid5(_ID_NAMESPACE, f"user:{run_id}")),
            event_type="play",
            event_ts=event_time(settings, at),
            duration_ms=DURATION_MS,
            device=DEVICE,
            raw_payload={PROPERTY: run_id},
        )
        return cls(run_id=run_id, started=at, content=content, engagement=engagement)

    @property
    def engagement_seconds(self) -> float:
        return DURATION_MS / 1000

    @property
    def event_minute(self) -> int:
        """Epoch minute of the test engagement's event time (its leaderboard bucket)."""
        return int(self.engagement.event_ts.timestamp()) // 60

    def eventhub_body(self, mapping_index: int) -> bytes:
        """The JSON body of the test event for mapping ``mapping_index`` (valid for every body format)."""
        body: dict[str, Any] = {
            PROPERTY: self.run_id,
            "mapping": mapping_index,
            "sent_at": iso(datetime.now(tz=UTC)),
        }
        return json.dumps(body).encode()

    def eventhub_properties(self) -> dict[str, str]:
        return {PROPERTY: self.run_id}
