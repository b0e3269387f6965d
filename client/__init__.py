"""Client for the durable control plane."""
