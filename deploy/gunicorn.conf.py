"""gunicorn settings shared by every API process (local runs, the container image, Kubernetes).

Threads rather than more processes: requests mostly wait on the database and the broker, and each
process holds its own Kafka producer and Mongo pool. Override with RAPPORT_WEB_WORKERS/THREADS.
"""
import os

workers = int(os.environ.get("RAPPORT_WEB_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("RAPPORT_WEB_THREADS", "4"))
timeout = 30
graceful_timeout = 10
keepalive = 5
# Bound a worker's life so that a slow leak cannot grow without limit.
max_requests = 10000
max_requests_jitter = 1000
