"""The polling helper every test waits with: it returns what the check found, and a time-out fails the test."""

from __future__ import annotations

import pytest

from tests.helpers import eventually


async def test_eventually_returns_the_first_answer_that_is_not_none_or_false():
    answers = iter([None, False, 0])

    async def check() -> int | bool | None:
        return next(answers)

    assert await eventually(check, interval=0) == 0


async def test_eventually_fails_when_the_condition_never_holds():
    calls = 0

    async def never() -> None:
        nonlocal calls
        calls += 1

    with pytest.raises(AssertionError, match="the records: not met within"):
        await eventually(never, timeout=0.05, interval=0.01, what="the records")
    assert calls >= 2
