"""Server hooks for the benchmark: a hook module without request hooks (as
OpenTelemetry's or prometheus_client's recipes are): requests pass no hook
code, so they should cost what they cost without --hooks."""


def post_fork(server, worker):
    pass


def child_exit(server, worker):
    pass
