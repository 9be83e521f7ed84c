"""How long ``serve`` waits before starting its worker process again (the process itself: tests/e2e)."""

from __future__ import annotations

from bot.worker_process import restart_delay


def test_a_child_that_keeps_dying_young_waits_twice_as_long_each_time_up_to_a_minute() -> None:
    delays = [0.0]
    for _ in range(8):
        delays.append(restart_delay(delays[-1], lived=5))
    assert delays[1:] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_a_child_that_lived_a_minute_is_started_again_after_a_second() -> None:
    assert restart_delay(32, lived=61) == 1
    assert restart_delay(0, lived=61) == 1
