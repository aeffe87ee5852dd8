"""The monitor's watchdog: how long the loop may go without ``step()`` before a hang dump."""

from __future__ import annotations

from commprof.capture.watchdog import STARTUP_FACTOR, Watchdog


def test_the_first_step_gets_the_startup_allowance_and_later_steps_the_timeout():
    dumps: list[str] = []
    dog = Watchdog(10.0, lambda reason, step, idle: dumps.append(reason))
    assert dog.limit_s == STARTUP_FACTOR * 10.0 > 10.0  # building the model and the first batches are no step
    dog.beat(1)
    assert dog.limit_s == 10.0
    dog.beat(7)
    assert dog.limit_s == 10.0 and dumps == []
