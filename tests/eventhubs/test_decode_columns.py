"""Column conversions of the decoder that the host's usual batches do not reach."""

from __future__ import annotations

from typing import Any

import pytest

from shared.eventhubs.decode import _offsets


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0, 512, 2**40], ["0", "512", str(2**40)]),  # what the worker hands over: integers
        (["A:512", None, "7"], ["A:512", None, "7"]),  # opaque texts, kept as they are
        ([12, "A:1", None], ["12", "A:1", None]),  # a mix: each value as text
        ([2**70, 1], [str(2**70), "1"]),  # beyond 64 bits: as text, not truncated
    ],
)
def test_offsets_are_kept_as_text(values: list[Any], expected: list[str | None]) -> None:
    assert _offsets(values).to_pylist() == expected
