# After a gunicorn.conf.py with hooks (the shape of the prometheus_client and
# OpenTelemetry recipes): settings as module variables, hooks as functions.
import multiprocessing

bind = ["unix:/run/shop/gunicorn.sock", "127.0.0.1:8000"]
workers = multiprocessing.cpu_count() * 0 + 3
threads = 4
worker_class = "gthread"
timeout = 60
graceful_timeout = 20
keepalive = 5
max_requests = 1000
max_requests_jitter = 50
accesslog = "-"
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
errorlog = "/var/log/shop/error.log"
loglevel = "warning"
forwarded_allow_ips = "10.0.0.1,10.0.0.2"
preload_app = True
proc_name = "shop"


def post_fork(server, worker):
    server.log.info("worker %s forked", worker.pid)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
