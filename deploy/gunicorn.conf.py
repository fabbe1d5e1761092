"""gunicorn settings shared by every API process (local runs, the container image, Kubernetes).

Threads rather than more processes: requests mostly wait on the database and the broker, and each
process holds its own Kafka producer and Mongo pool. Override with RAPPORT_WEB_WORKERS/THREADS.
"""
import os
import shutil
import tempfile

# Several processes serve one API: prometheus_client's multiprocess mode aggregates their metrics. The
# directory must exist before the workers import prometheus_client, i.e. here, in the master.
_own_metrics_dir = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if _own_metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="rapport-metrics-")

workers = int(os.environ.get("RAPPORT_WEB_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("RAPPORT_WEB_THREADS", "4"))
timeout = 30
graceful_timeout = 10
keepalive = 5
# Bound a worker's life so that a slow leak cannot grow without limit.
max_requests = 10000
max_requests_jitter = 1000


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _own_metrics_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
