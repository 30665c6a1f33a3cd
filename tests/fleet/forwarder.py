"""The loopback forwarder of a simulated host: it lives in ``bench/forwarder.py`` (the Redis chaos run
uses it too, and bench/ does not import tests/); re-exported here for the fleet tests."""

from bench.forwarder import CHUNK, CONTROL_TIMEOUT, HIGH_WATER, Forwarder

__all__ = ["CHUNK", "CONTROL_TIMEOUT", "HIGH_WATER", "Forwarder"]
