"""Functional tests: real dumbwaiter processes (and the other processes and
listening sockets the server works with) on loopback and unix sockets (see
tests/README.md)."""
