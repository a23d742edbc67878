"""Server hooks for the benchmark: pre_request and post_request that do
nothing, to measure what passing through them costs a request."""


def pre_request(worker, req):
    pass


def post_request(worker, req, environ, resp):
    pass
