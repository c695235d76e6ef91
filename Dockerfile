# The orchestrator's production image: web app, Celery services, a flow worker or one flow run,
# chosen by the command (see docker-entrypoint.sh and docs/deployment.md).
#
#   docker build -t orchestrator .                                   # online: python image + PyPI
#   docker build --build-arg BASE_IMAGE=orchestrator-base:bookworm-python3 -t orchestrator .
#                                                                    # offline, see below
#
# BASE_IMAGE is any Debian-like image with python3 (3.11 or 3.12) and its venv module.
# Offline builds: put wheels of every dependency in .wheelhouse/ (`python -m orchestrator.images
# wheelhouse --into .wheelhouse`); when that folder holds wheels, pip uses them and nothing else.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# --- builder: a virtualenv with the project and its dependencies --------------------------------
FROM ${BASE_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
COPY . /app
# Offline (wheels in .wheelhouse/): only those. Online: PyPI, with compilers for any dependency
# that has no wheel for this platform (they stay in this stage).
RUN set -eu; \
    if ls /app/.wheelhouse/*.whl >/dev/null 2>&1; then \
        mv /app/.wheelhouse /wheels; \
        pip_source="--no-index --find-links /wheels"; \
    else \
        rm -rf /app/.wheelhouse; \
        pip_source=""; \
        if command -v apt-get >/dev/null; then \
            apt-get update -qq \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends build-essential libpq-dev \
            && rm -rf /var/lib/apt/lists/*; \
        fi; \
    fi; \
    python3 -m venv /opt/venv; \
    /opt/venv/bin/pip install --quiet $pip_source -e "/app[kubernetes]"; \
    rm -rf /wheels
# Static files are collected once, here; whitenoise serves them from the image.
RUN SECRET_KEY=collectstatic-only ORCHESTRATOR_HOME=/tmp/build-home STATIC_ROOT=/app/staticfiles \
        /opt/venv/bin/python /app/manage.py collectstatic --noinput --verbosity 0 \
    && rm -rf /tmp/build-home

# --- final: the venv and the code, no compilers, a non-root user --------------------------------
FROM ${BASE_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=orchestrator.settings \
    ORCHESTRATOR_HOME=/data \
    STATIC_ROOT=/app/staticfiles
RUN groupadd --system --gid 10001 orchestrator \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --create-home --shell /usr/sbin/nologin orchestrator
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
WORKDIR /app
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["/app/docker-entrypoint.sh"]
CMD ["web"]
