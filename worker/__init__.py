"""The durable worker SDK and runtime."""
