"""The order saga example, in-process with durable.testing (24 hours pass in no time)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from durable.examples.order import Order, OrderResult, app
from durable.testing import WorkflowEnded, WorkflowEnvironment


async def test_approved_orders_ship() -> None:
    env = WorkflowEnvironment(app)
    handle = await env.start("order", Order(order_id="o-1", amount=5))
    await handle.wait_for_event("TimerStarted")
    assert handle.query("status") == {"order_id": "o-1", "stage": "awaiting approval", "approved_by": None}
    await handle.signal("approval", {"approved": True, "by": "ann"})
    result = await handle.result(type=OrderResult)
    assert result.status == "shipped" and result.compensated == []
    assert handle.query("status")["stage"] == "shipped"


async def test_rejection_compensates_newest_first() -> None:
    env = WorkflowEnvironment(app)
    handle = await env.start("order", Order(order_id="o-2", amount=5))
    await handle.signal("approval", {"approved": False, "reason": "fraud"})
    result = await handle.result(type=OrderResult)
    assert result.status == "rejected" and result.detail == "fraud"
    assert result.compensated == ["refunded charge-o-2", "released reservation-o-2"]


async def test_no_answer_in_24_hours_expires_and_compensates() -> None:
    env = WorkflowEnvironment(app)
    result = OrderResult.model_validate(await env.run("order", Order(order_id="o-3", amount=5)))
    assert result.status == "expired" and len(result.compensated) == 2
    assert env.now() - env.start_time == timedelta(hours=24)


async def test_a_declined_card_releases_the_stock_and_fails_the_order() -> None:
    with pytest.raises(WorkflowEnded) as ended:
        await WorkflowEnvironment(app).run("order", Order(order_id="o-4", amount=50_000))
    assert ended.value.status == "failed" and ended.value.error["type"] == "CardDeclined"
    assert "released reservation-o-4" in ended.value.error["message"]


async def test_cancelling_compensates_then_ends_cancelled() -> None:
    env = WorkflowEnvironment(app)
    handle = await env.start("order", Order(order_id="o-5", amount=5))
    await handle.wait_for_event("TimerStarted")  # charged, waiting for the approval
    await handle.cancel()
    with pytest.raises(WorkflowEnded) as ended:
        await handle.result()
    assert ended.value.status == "cancelled"
    refunds = [e for e in handle.events("ActivityScheduled") if e.data["activity_type"] == "refund_card"]
    assert len(refunds) == 1
