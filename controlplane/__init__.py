"""The durable control plane: the only component with database access."""
