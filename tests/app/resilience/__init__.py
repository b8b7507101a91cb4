"""Helpers shared by the resilience tests (fuzzing, shutdown, key rotation, load, slow clients)."""
