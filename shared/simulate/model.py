"""Deterministic engagement traffic and its Debezium-flattened Kafka shape.

Defaults follow the earlier simulator: event mix play 0.60 / pause 0.20 / click 0.15 / finish 0.05;
``duration_ms`` 500..300000 (``None`` for clicks); content ``length_seconds`` 60..3600 (``None`` for
newsletters); slugs ``seed-<type>-<hex8>``; raw payload ``{app_version, ip, device_meta{battery, mode},
ab_bucket}`` or ``{"platform": "tv"}`` for roku. With a ``seed`` (and a fixed start time) every id, user,
event and timestamp is reproducible.

Debezium shapes (``ExtractNewRecordState`` with ``add.fields=op,table,source.ts_ms``, JSON without schemas):

- ``content.flat``: key ``{"id": "<uuid>"}``; value the row plus ``__op``, ``__table``, ``__source_ts_ms``.
- ``engagement_events.flat``: key the ``content_id`` as a JSON string; ``raw_payload`` (jsonb) as a JSON
  string;
  ``TIMESTAMPTZ`` as ISO 8601 UTC with ``Z``.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

EVENT_MIX: tuple[tuple[str, float], ...] = (
    ("play", 0.60),
    ("pause", 0.20),
    ("click", 0.15),
    ("finish", 0.05),
)
DEVICES: tuple[str, ...] = ("ios", "android", "web-chrome", "web-safari", "roku")
CONTENT_TYPES: tuple[str, ...] = ("podcast", "newsletter", "video")
_ADJECTIVES = ("Quiet", "Bright", "Hidden", "Rapid", "Golden", "Curious", "Late", "Open", "Wild", "Plain")
_NOUNS = ("River", "Signal", "Kitchen", "Market", "Orbit", "Harbor", "Garden", "Ledger", "Studio", "Summit")


@dataclass(frozen=True)
class Content:
    id: str
    slug: str
    title: str
    content_type: str
    length_seconds: int | None
    publish_ts: datetime

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "slug": self.slug,
            "title": self.title,
            "content_type": self.content_type,
            "length_seconds": self.length_seconds,
            "publish_ts": iso(self.publish_ts),
        }


@dataclass(frozen=True)
class Engagement:
    id: int
    content_id: str
    user_id: str
    event_type: str
    event_ts: datetime
    duration_ms: int | None
    device: str
    raw_payload: dict[str, Any] | None

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "content_id": self.content_id,
            "user_id": self.user_id,
            "event_type": self.event_type,
            "event_ts": iso(self.event_ts),
            "duration_ms": self.duration_ms,
            "device": self.device,
            "raw_payload": self.raw_payload,
        }


def iso(ts: datetime) -> str:
    """Debezium's ZonedTimestamp rendering: ISO 8601 in UTC with ``Z``."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class TrafficModel:
    """Content and engagement events drawn from one seeded random generator."""

    def __init__(
        self,
        *,
        seed: int | None = None,
        devices: Sequence[str] = DEVICES,
        content_types: Sequence[str] = CONTENT_TYPES,
        raw_payload: bool = True,
        start: datetime | None = None,
        rate: float = 5.0,
        jitter: float = 0.3,
        first_id: int | None = None,
    ) -> None:
        unknown = [t for t in content_types if t not in CONTENT_TYPES]
        if unknown:
            raise ValueError(f"unknown content type(s) {unknown}; use {', '.join(CONTENT_TYPES)}")
        if not devices or not content_types:
            raise ValueError("devices and content types must not be empty")
        self.rng = random.Random(seed)  # noqa: S311 - simulated traffic, not security
        self.devices = tuple(devices)
        self.content_types = tuple(content_types)
        self.raw_payload = raw_payload
        self.start = (start or datetime.now(tz=UTC)).astimezone(UTC)
        self.rate = rate
        self.jitter = jitter
        # Ids must not collide across runs (sinks deduplicate by id): the start time in microseconds.
        self.next_id = first_id if first_id is not None else int(self.start.timestamp() * 1_000_000)

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def content(self, n: int) -> list[Content]:
        items: list[Content] = []
        for _ in range(n):
            kind = self.rng.choice(self.content_types)
            length = None if kind == "newsletter" else self.rng.randint(60, 3600)
            title = f"{self.rng.choice(_ADJECTIVES)} {self.rng.choice(_NOUNS)}"
            items.append(
                Content(
                    id=self.uuid(),
                    slug=f"seed-{kind}-{self.rng.getrandbits(32):08x}",
                    title=title,
                    content_type=kind,
                    length_seconds=length,
                    publish_ts=self.start
                    - timedelta(days=self.rng.randint(0, 365), seconds=self.rng.randint(0, 86399)),
                )
            )
        return items

    def _event_type(self) -> str:
        roll = self.rng.random()
        acc = 0.0
        for name, weight in EVENT_MIX:
            acc += weight
            if roll < acc:
                return name
        return EVENT_MIX[-1][0]

    def _payload(self, device: str) -> dict[str, Any] | None:
        if not self.raw_payload:
            return None
        if device == "roku":
            return {"platform": "tv"}
        return {
            "app_version": f"{self.rng.randint(1, 5)}.{self.rng.randint(0, 20)}.{self.rng.randint(0, 9)}",
            "ip": f"10.{self.rng.randint(0, 255)}.{self.rng.randint(0, 255)}.{self.rng.randint(1, 254)}",
            "device_meta": {"battery": self.rng.randint(5, 100), "mode": self.rng.choice(["light", "dark"])},
            "ab_bucket": self.rng.choice(["A", "B"]),
        }

    def events(self, content_ids: Sequence[str]) -> Iterator[Engagement]:
        """Endless engagement events over ``content_ids``, event times spaced by ``1/rate`` (with jitter)."""
        if not content_ids:
            raise ValueError("no content to engage with (use --ensure-content N with N > 0)")
        step = 1.0 / self.rate if self.rate > 0 else 0.001
        offset = 0.0
        while True:
            event_type = self._event_type()
            device = self.rng.choice(self.devices)
            yield Engagement(
                id=self.next_id,
                content_id=self.rng.choice(content_ids),
                user_id=self.uuid(),
                event_type=event_type,
                event_ts=self.start + timedelta(seconds=offset),
                duration_ms=None if event_type == "click" else self.rng.randint(500, 300_000),
                device=device,
                raw_payload=self._payload(device),
            )
            self.next_id += 1
            offset += step * (1 + self.rng.uniform(-self.jitter, self.jitter))

    def pause(self, events: int) -> float:
        """Seconds to wait after sending ``events`` to hold ``rate`` (0 when unpaced)."""
        if self.rate <= 0:
            return 0.0
        return max(0.0, events / self.rate * (1 + self.rng.uniform(-self.jitter, self.jitter)))


def _source_ts(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def debezium_content(content: Content, *, op: str = "c") -> tuple[bytes, bytes]:
    """(key, value) of a ``content.flat`` message."""
    value = {
        **content.row(),
        "__op": op,
        "__table": "content",
        "__source_ts_ms": _source_ts(content.publish_ts),
    }
    return json.dumps({"id": content.id}).encode(), json.dumps(value).encode()


def debezium_engagement(event: Engagement, *, op: str = "c") -> tuple[bytes, bytes]:
    """(key, value) of an ``engagement_events.flat`` message (key: the content id as a JSON string)."""
    row = event.row()
    row["raw_payload"] = None if event.raw_payload is None else json.dumps(event.raw_payload)
    value = {**row, "__op": op, "__table": "engagement_events", "__source_ts_ms": _source_ts(event.event_ts)}
    return json.dumps(event.content_id).encode(), json.dumps(value).encode()
