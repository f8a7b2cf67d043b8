"""The log store adds each byte once, whoever re-ships it."""

from __future__ import annotations

from pathlib import Path

import pytest

from spotctl.storage.log_store import LogStore


def test_positional_appends_skip_what_is_stored(tmp_path: Path) -> None:
    store = LogStore(tmp_path)
    assert store.append_at(1, 1, 0, 0, b"line 1\n") == 7
    assert store.append_at(1, 1, 0, 0, b"line 1\nline 2\n") == 14  # a re-attached monitor re-reads
    assert store.append_at(1, 1, 0, 7, b"line 2\nline 3\n") == 21
    assert store.read(1, 1, 0) == b"line 1\nline 2\nline 3\n"
    with pytest.raises(ValueError, match="gap"):
        store.append_at(1, 1, 0, 100, b"x")


def test_attempts_and_ranks_in_order(tmp_path: Path) -> None:
    store = LogStore(tmp_path)
    for attempt in (10, 2, 1):
        store.append_at(5, attempt, 0, 0, b"x")
    store.append_at(5, 2, 1, 0, b"y")
    assert store.attempts(5) == [1, 2, 10]
    assert store.ranks(5, 2) == [0, 1]
    assert store.attempts(6) == [] and store.read(6, 1) == b""
