"""Per-token cooldown, in-flight claims and mention velocity."""

from __future__ import annotations

from hux.bot.dedupe import MentionTracker, TokenGate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_claim_at_a_time_then_cooldown_then_again() -> None:
    clock = Clock()
    gate = TokenGate(60, clock=clock)
    assert gate.claim("A") and not gate.claim("A")  # a second worker waits for the first
    gate.decided("A")
    clock.now += 59
    assert not gate.claim("A")
    clock.now += 2
    assert gate.claim("A")


def test_a_failed_lookup_leaves_no_cooldown() -> None:
    gate = TokenGate(900, clock=Clock())
    assert gate.claim("B")
    gate.failed("B")
    assert gate.claim("B")


def test_gate_is_bounded_and_seedable() -> None:
    clock = Clock()
    gate = TokenGate(60, max_tokens=3, clock=clock)
    for key in "CDEF":
        assert gate.claim(key)
        gate.decided(key)
    assert gate.claim("C")  # evicted as least recently decided
    gate.remember("G", seconds_ago=30)
    assert not gate.claim("G")


def test_mention_velocity_counts_distinct_groups_in_the_window() -> None:
    clock = Clock()
    tracker = MentionTracker(3600, clock=clock)
    assert tracker.mention("T", "g1") == 1
    assert tracker.mention("T", "g1") == 1
    assert tracker.mention("T", "g2") == 2
    clock.now += 3000
    assert tracker.mention("T", "g3") == 3
    clock.now += 1000  # g1 and g2 are now older than an hour
    assert tracker.mention("T", "g3") == 1
    assert tracker.groups("T") == ("g3",)


def test_tracker_is_bounded() -> None:
    tracker = MentionTracker(3600, max_tokens=2, max_groups_per_token=3, clock=Clock())
    for g in range(10):
        tracker.mention("T", f"g{g}")
    assert len(tracker.groups("T")) == 3
    tracker.mention("U", "g")
    tracker.mention("V", "g")
    assert tracker.groups("T") == ()
