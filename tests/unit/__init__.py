"""Unit tests: no process started, no front server, no listening socket
(see tests/README.md)."""
