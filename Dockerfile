# One image for every Rapport process: the four APIs (gunicorn), the four workers and `rapport ensure-topics`.
# docker-compose.yml and deploy/k8s pick the process with `command:`; the default is the intake API.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The pinned dependencies first, in their own layer, so that a code change does not reinstall them;
# transitive ones at the versions in deploy/requirements.lock (what the tests ran with).
COPY pyproject.toml deploy/requirements.lock ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt -c requirements.lock \
    && rm /tmp/requirements.txt

# The project itself (and the `rapport` console script). The processes run from /app, so the
# source tree there, data files included, is what they import.
COPY services ./services
COPY deploy/gunicorn.conf.py ./deploy/gunicorn.conf.py
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf build ./*.egg-info \
    && groupadd --system --gid 10001 rapport \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin rapport

# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd. Nothing in /app is
# writable by this user: the processes write only to /tmp (gunicorn's heartbeat files, the metrics
# directory), which Kubernetes mounts as an emptyDir under a read-only root filesystem.
USER 10001:10001
# The APIs (8001-8004) and every worker's probe and metrics server (RAPPORT_WORKER_HTTP_PORT).
EXPOSE 8001 8002 8003 8004 9100
CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py", "-b", "0.0.0.0:8001", "services.intake.entrypoints.app:create_app()"]
