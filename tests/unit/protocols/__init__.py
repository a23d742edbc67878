"""The sans-IO protocol state machines: bytes in, events out (see tests/README.md)."""
