"""The Kafka source's parts that need no broker: host.json settings and the subscriber-executor channel."""

from __future__ import annotations

import threading
import time
from typing import Any

from shared.devhost.kafka import KafkaBatch, KafkaBatching, KafkaMessage, _Channel


def batch(partition: int, offset: int = 0) -> KafkaBatch:
    message = KafkaMessage("t", partition, offset, None, b"v", 0)
    return KafkaBatch([([message], None)], frozenset({("t", partition)}))


def test_host_json_settings_with_the_extension_defaults() -> None:
    assert KafkaBatching.from_host_json({}, max_batch_size=64) == KafkaBatching(64, 1.0, 1, 200)
    section = {"maxBatchSize": 1000, "SubscriberIntervalInSeconds": 2, "executorChannelCapacity": 3}
    assert KafkaBatching.from_host_json({**section, "AutoCommitIntervalMs": 50}, max_batch_size=1000) == (
        KafkaBatching(1000, 2.0, 3, 50)
    )
    assert (
        KafkaBatching.from_host_json(
            {"executorChannelCapacity": 0}, max_batch_size=1
        ).executor_channel_capacity
        == 1
    )


def test_the_subscriber_waits_for_room_and_stores_what_the_executor_finished_meanwhile() -> None:
    channel = _Channel(1)
    never = lambda: False  # noqa: E731
    stored: list[list[dict[tuple[str, int], int]]] = []
    assert channel.put(batch(0), never, stored.append)
    done = threading.Event()

    def second() -> None:
        assert channel.put(batch(0, 1), never, stored.append)  # waits: the channel holds one batch
        done.set()

    threading.Thread(target=second, daemon=True).start()
    time.sleep(0.3)
    assert not done.is_set()
    channel.finish({("t", 0): 5})  # the executor finished an earlier batch: stored while waiting
    time.sleep(0.3)
    assert stored == [[{("t", 0): 5}]] and not done.is_set()
    first = channel.get()
    assert first is not None and first.units[0][0][0].offset == 0
    assert done.wait(5)
    assert channel.take_finished() == []


def test_revoked_partitions_lose_their_queued_batches_and_a_rebalance_waits_for_the_batch_in_flight() -> None:
    channel = _Channel(3)
    for p in (0, 1, 0):
        assert channel.put(batch(p), lambda: False, lambda _: None)
    assert channel.discard({("t", 0)}) == 2
    in_flight = channel.get()
    assert in_flight is not None and in_flight.partitions == {("t", 1)}
    assert not channel.wait_idle(0.2)  # still running
    threading.Timer(0.2, channel.done).start()
    assert channel.wait_idle(5)


def test_a_closed_channel_ends_both_threads() -> None:
    channel = _Channel(1)
    assert channel.put(batch(0), lambda: False, lambda _: None)
    stopping = threading.Event()
    result: list[bool] = []
    waiter = threading.Thread(
        target=lambda: result.append(channel.put(batch(1), stopping.is_set, lambda _: None))
    )
    waiter.start()
    stopping.set()
    waiter.join(5)
    assert result == [False]  # not queued: delivered again after the restart
    channel.close()
    assert channel.get() is not None  # what was queued before the close
    assert channel.get() is None


def test_a_failing_subscriber_stops_the_source_even_while_a_batch_retries_forever() -> None:
    """The subscriber fails (say, a fatal consumer error) while the executor retries a batch without end: the
    source stops the host, the batch is abandoned (nothing stored) and ``run`` raises instead of hanging."""
    from shared.devhost.functions import TriggerKind
    from shared.devhost.kafka import KafkaSource
    from shared.devhost.policy import RetryPolicy
    from shared.devhost.retry import Invoker
    from shared.devhost.stats import HostStats
    from shared.settings import load_settings
    from tests.devhost.support import hosted

    calls: list[int] = []

    def always_fails(events: Any) -> None:
        calls.append(len(events))
        raise RuntimeError("sink down")

    fn = hosted(
        TriggerKind.KAFKA,
        always_fails,
        name="stuck",
        connection="127.0.0.1:1",  # no broker: this test never reaches one
        retry=RetryPolicy("fixed_delay", -1, delay=0.05),
    )

    class FailingSubscriber(KafkaSource):
        def _fetch(self, consumer: Any) -> list[KafkaMessage]:
            if not calls:
                return [KafkaMessage("topic", 0, 0, None, b"{}", 0)]
            while len(calls) < 3:  # the executor is retrying
                time.sleep(0.05)
            raise RuntimeError("fatal consumer error")

    stop = threading.Event()
    source = FailingSubscriber(fn, load_settings({}), KafkaBatching(), Invoker(stop), HostStats(), stop)
    ended: list[BaseException] = []

    def run() -> None:
        try:
            source.run()
        except RuntimeError as exc:
            ended.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the source hung on its executor"
    assert [str(e) for e in ended] == ["fatal consumer error"]
    assert stop.is_set()
    assert source.phases.batches == 0 and source._stored == {}  # abandoned: nothing stored
