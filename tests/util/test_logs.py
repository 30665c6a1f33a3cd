"""The warning limiter: the first line of a kind passes, repeats within the interval are counted."""

import logging

import pytest

from mcp_sync_auth._util.logs import WarningLimiter, cause_of, warn_limited
from mcp_sync_auth.errors import TokenEndpointError

from ..clocks import ManualClock


@pytest.fixture
def limiter():
    return WarningLimiter(interval=60.0, clock=ManualClock())


def test_the_first_line_passes_and_repeats_are_held_back(limiter):
    assert limiter.admit("k") == (True, 0)
    assert [limiter.admit("k") for _ in range(5)] == [(False, 0)] * 5


def test_after_the_interval_one_line_passes_and_says_how_many_were_held(limiter):
    limiter.admit("k")
    for _ in range(7):
        limiter.admit("k")
    limiter._clock.advance(59.9)
    assert limiter.admit("k") == (False, 0)
    limiter._clock.advance(0.1)
    assert limiter.admit("k") == (True, 8)
    assert limiter.admit("k") == (False, 0)  # the count starts again


def test_another_subject_or_cause_is_news(limiter, caplog):
    logger = logging.getLogger("mcp_sync_auth.test_logs")
    with caplog.at_level(logging.WARNING, logger=logger.name):
        for subject in ("chain-a", "chain-b"):
            for cause in ("timeout", "refused"):
                for _ in range(3):
                    limiter.log(logger, logging.WARNING, subject, cause, "%s failed: %s", subject, cause)
    assert [r.getMessage() for r in caplog.records] == [
        "chain-a failed: timeout",
        "chain-a failed: refused",
        "chain-b failed: timeout",
        "chain-b failed: refused",
    ]


def test_the_line_after_the_interval_carries_the_count(limiter, caplog):
    logger = logging.getLogger("mcp_sync_auth.test_logs")
    with caplog.at_level(logging.WARNING, logger=logger.name):
        for _ in range(4):
            limiter.log(logger, logging.WARNING, "s", "c", "down: %s", "x")
        limiter._clock.advance(60)
        limiter.log(logger, logging.WARNING, "s", "c", "down: %s", "x")
    assert [r.getMessage() for r in caplog.records] == ["down: x", "down: x (3 more like this held back)"]


def test_a_disabled_level_is_neither_logged_nor_counted(limiter, caplog):
    logger = logging.getLogger("mcp_sync_auth.test_logs")
    with caplog.at_level(logging.ERROR, logger=logger.name):
        limiter.log(logger, logging.WARNING, "s", "c", "quiet")
    assert caplog.records == []
    assert limiter.admit((logger.name, logging.WARNING, "s", "c")) == (True, 0)


def test_levels_are_kept_apart(warning_clock, caplog):
    logger = logging.getLogger("mcp_sync_auth.test_logs")
    with caplog.at_level(logging.WARNING, logger=logger.name):
        warn_limited(logger, "s", "c", "as a warning")
        warn_limited(logger, "s", "c", "as an error", level=logging.ERROR)
        warn_limited(logger, "s", "c", "as an error", level=logging.ERROR)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "as a warning"),
        (logging.ERROR, "as an error"),
    ]


def test_the_cause_of_a_failure_ignores_its_changing_message():
    first = TokenEndpointError("took 5.01 s", status_code=503, error_code="temporarily_unavailable")
    again = TokenEndpointError("took 5.37 s", status_code=503, error_code="temporarily_unavailable")
    other = TokenEndpointError("took 5.01 s", status_code=400, error_code="invalid_request")
    assert cause_of(first) == cause_of(again) != cause_of(other)
    assert cause_of(ConnectionError("a")) != cause_of(TimeoutError("a"))


def test_the_memory_of_kinds_is_bounded(limiter):
    for n in range(20_000):
        limiter.admit(n)
    assert len(limiter._kinds) <= 4096
