"""The fuzz run goes last: it registers accounts, acts as an admin and spends the rate limits of
the addresses it comes from, none of which another test should meet halfway through."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    fuzz = [item for item in items if HERE in Path(str(item.path)).parents]
    for item in fuzz:
        # schemathesis 4.32's from_fixture() reads the node's `_nodeid`, which pytest 9 items no
        # longer have (their `nodeid` is computed); it only renames the node for its own reports.
        if not hasattr(item, "_nodeid"):
            item._nodeid = item.nodeid  # type: ignore[attr-defined]
    if fuzz:
        items[:] = [item for item in items if item not in fuzz] + fuzz
