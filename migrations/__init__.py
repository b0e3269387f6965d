"""Numbered, forward-only SQL migrations, shipped as package data and applied by
`durable migrate` (see durable.controlplane.migrator)."""
