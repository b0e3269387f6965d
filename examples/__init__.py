"""Example apps built on durable."""
