"""An order saga: each step that succeeded is undone, newest first, when a later one fails,
when the approval is refused, when no answer comes in 24 hours, or when the order is
cancelled. The wait is a durable timer: no worker holds anything while it runs."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from durable.common import NonRetryableError, RetryPolicy
from durable.worker import ActivityContext, ActivityError, App, WorkflowContext, WorkflowFailed

APPROVAL_TIMEOUT = timedelta(hours=24)

app = App("order")


class Order(BaseModel):
    order_id: str
    amount: float
    item: str = "widget"


class Approval(BaseModel):
    approved: bool
    by: str = ""
    reason: str = ""


class OrderResult(BaseModel):
    order_id: str
    status: str  # "shipped", "rejected", "expired"
    compensated: list[str] = []
    detail: str = ""


@app.activity(name="reserve_stock", start_to_close_timeout=30)
async def reserve_stock(ctx: ActivityContext, order: Order) -> str:
    return f"reservation-{order.order_id}"


@app.activity(name="release_stock", start_to_close_timeout=30)
async def release_stock(ctx: ActivityContext, reservation: str) -> str:
    return f"released {reservation}"


@app.activity(name="charge_card", start_to_close_timeout=30,
              retry_policy=RetryPolicy(max_attempts=3, non_retryable_error_types=("CardDeclined",)))
async def charge_card(ctx: ActivityContext, order: Order) -> str:
    if order.amount > 10_000:
        raise NonRetryableError(f"card declined for {order.amount}", type="CardDeclined")
    return f"charge-{order.order_id}"


@app.activity(name="refund_card", start_to_close_timeout=30)
async def refund_card(ctx: ActivityContext, charge: str) -> str:
    return f"refunded {charge}"


@app.activity(name="ship", start_to_close_timeout=60)
async def ship(ctx: ActivityContext, order: Order) -> str:
    return f"shipped {order.item} for {order.order_id}"


@app.workflow(name="order")
async def order(ctx: WorkflowContext, input: Order) -> OrderResult:
    undo: list[tuple[str, Any]] = []  # compensations of the steps done so far, in order
    status = {"order_id": input.order_id, "stage": "reserving", "approved_by": None}
    ctx.set_query_handler("status", lambda: dict(status))  # `durable workflows query ID status`

    async def compensate() -> list[str]:
        done = []
        for activity, argument in reversed(undo):
            done.append(await ctx.activity(activity, argument))
        return done

    try:
        reservation = await ctx.activity(reserve_stock, input)
        undo.append(("release_stock", reservation))
        status["stage"] = "charging"
        charge = await ctx.activity(charge_card, input)
        undo.append(("refund_card", charge))
        status["stage"] = "awaiting approval"
        ctx.logger.info("order %s charged; waiting for approval", input.order_id)
        approval = await ctx.wait_signal("approval", timeout=APPROVAL_TIMEOUT, type=Approval)
        if approval is None or not approval.approved:
            outcome = "expired" if approval is None else "rejected"
            status["stage"] = f"{outcome}, compensating"
            detail = "no approval within 24 h" if approval is None else approval.reason
            result = OrderResult(order_id=input.order_id, status=outcome,
                                 compensated=await compensate(), detail=detail)
            status["stage"] = outcome
            return result
        status.update(stage="shipping", approved_by=approval.by)
        shipped = await ctx.activity(ship, input)
        status["stage"] = "shipped"
        return OrderResult(order_id=input.order_id, status="shipped", detail=shipped)
    except ActivityError as error:
        compensated = await compensate()
        raise WorkflowFailed(f"order {input.order_id} failed: {error}; compensated: {compensated}",
                             type=error.type) from None
    except asyncio.CancelledError:
        await compensate()  # a cancelled order gives back what it took, then ends cancelled
        raise
