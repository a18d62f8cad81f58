"""How the drainer reads a peer's answer to an op (services.tasks.outbox._delivery)."""

from __future__ import annotations

import httpx
import pytest

from services.tasks.models import OutboxOp
from services.tasks.outbox import _delivery
from shared.outbox import Outcome


@pytest.mark.parametrize("content", [b"[]", b'"not found"', b"<html>not found</html>"])
def test_a_404_whose_body_is_no_object_is_refused_not_a_crash(content: bytes) -> None:
    response = httpx.Response(404, content=content, headers={"content-type": "application/json"})
    assert _delivery(OutboxOp(kind="payout"), response).outcome == Outcome.REFUSED


def test_a_missing_endpoint_is_retried_and_a_refund_of_no_escrow_is_done() -> None:
    missing = httpx.Response(404, json={"code": 1000, "message": "not found"})
    assert _delivery(OutboxOp(kind="grow"), missing).outcome == Outcome.RETRY
    no_escrow = httpx.Response(404, json={"code": 1000, "message": "escrow does not exist"})
    assert _delivery(OutboxOp(kind="refund"), no_escrow).outcome == Outcome.DONE
