#!/bin/sh
# The image's one entrypoint: the first argument says what this container runs.
#
#   web [gunicorn args]      the web app and API (gunicorn; static files by whitenoise), after
#                            `migrate` unless ORCHESTRATOR_MIGRATE=false
#   services [celery args]   Celery worker + beat: scheduler, late runs, reaper, retention, notices
#   worker --pool NAME ...   a flow worker (manage.py runworker)
#   flow-run RUN_ID          one flow run (python -m orchestrator.engine RUN_ID)
#   manage COMMAND ...       any manage.py command (migrate, createsuperuser, deploy, ...)
#   anything else            run as it is (sh, python, ...)
set -eu

command="${1:-web}"
[ "$#" -gt 0 ] && shift

case "$command" in
  web)
    if [ "${ORCHESTRATOR_MIGRATE:-true}" = "true" ]; then
      python /app/manage.py migrate --noinput
    fi
    # Threads: each remote worker's idle claim holds one while it waits (a long poll).
    exec gunicorn orchestrator.wsgi \
      --bind "${BIND:-0.0.0.0:${PORT:-8000}}" \
      --workers "${WEB_CONCURRENCY:-2}" --threads "${WEB_THREADS:-16}" \
      --access-logfile - --graceful-timeout 5 "$@"
    ;;
  services)
    exec celery -A orchestrator worker --beat \
      --concurrency "${CELERY_CONCURRENCY:-2}" --loglevel "${LOG_LEVEL:-INFO}" \
      --hostname "orchestrator@%h" "$@"
    ;;
  worker)
    exec python /app/manage.py runworker "$@"
    ;;
  flow-run)
    exec python -m orchestrator.engine "$@"
    ;;
  manage)
    exec python /app/manage.py "$@"
    ;;
  *)
    exec "$command" "$@"
    ;;
esac
