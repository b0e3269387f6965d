"""The order example: reserve, charge, then wait up to 24 hours for an approval signal;
on rejection (or no answer) compensate in reverse order (a saga).

    durable worker --app durable.examples.order:app
    durable workflows start order --input '{"order_id": "o-1", "amount": 42.0}'
    durable workflows signal <id> approval --payload '{"approved": true, "by": "ann"}'
"""

from __future__ import annotations

from durable.examples.order.app import Approval, Order, OrderResult, app, order

__all__ = ["Approval", "Order", "OrderResult", "app", "order"]
