"""KEDA external scaler contract (package externalscaler)."""
