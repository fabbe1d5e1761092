#!/usr/bin/env bash
# `make up`: start the platform in the background (idempotent), wait until every API is ready, seed demo data.
set -euo pipefail
cd "$(dirname "$0")/../.."
state=${RAPPORT_STATE_DIR:-.rapport}
pidfile=$state/platform.pid
mkdir -p "$state/logs"
export PATH="$PWD/.venv/bin:$PATH"
# One origin, as behind deploy/proxy: the links and redirects every service makes go through the gateway.
entry="http://127.0.0.1:${RAPPORT_ENTRY_PORT:-8000}"
export RAPPORT_INTAKE_URL=${RAPPORT_INTAKE_URL:-$entry}
export RAPPORT_SCORING_URL=${RAPPORT_SCORING_URL:-$entry/scoring}
export RAPPORT_REFERRAL_URL=${RAPPORT_REFERRAL_URL:-$entry/referral}
export RAPPORT_NOTIFY_URL=${RAPPORT_NOTIFY_URL:-$entry/notify}

if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "Rapport is already running (pid $(cat "$pidfile"))."
else
  # setsid: honcho and everything it starts form one process group that `make down` can stop together.
  setsid nohup honcho -f deploy/local/Procfile -d . start >"$state/logs/platform.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  echo "Starting Kafka, FerretDB, 4 APIs, 4 workers and the gateway (log: $state/logs/platform.log) ..."
fi

# Topics first (auto-creation is off): the APIs report ready only once they exist.
rapport ensure-topics --wait 120

urls=()
for port in "${RAPPORT_INTAKE_PORT:-8001}" "${RAPPORT_SCORING_PORT:-8002}" "${RAPPORT_REFERRAL_PORT:-8003}" "${RAPPORT_NOTIFY_PORT:-8004}"; do
  urls+=("http://127.0.0.1:$port/readyz")
done
for port in "${RAPPORT_INTAKE_WORKER_PORT:-8101}" "${RAPPORT_SCORING_WORKER_PORT:-8102}" "${RAPPORT_REFERRAL_WORKER_PORT:-8103}" "${RAPPORT_NOTIFY_WORKER_PORT:-8104}"; do
  urls+=("http://127.0.0.1:$port/readyz")
done
urls+=("$entry/_proxy/healthz")
if ! python deploy/local/runtime.py wait-http "${urls[@]}" --timeout 180; then
  echo "The platform did not become ready; the last lines of its log:" >&2
  tail -n 40 "$state/logs/platform.log" >&2
  exit 1
fi
python deploy/local/demo.py
cat <<EOT

Rapport is up at $entry/   (sign in there; scoring, referral and notify under /scoring/, /referral/, /notify/)
  APIs (each also behind the entry URL):
  intake    http://127.0.0.1:${RAPPORT_INTAKE_PORT:-8001}   (API docs: /openapi.json)
  scoring   http://127.0.0.1:${RAPPORT_SCORING_PORT:-8002}
  referral  http://127.0.0.1:${RAPPORT_REFERRAL_PORT:-8003}
  notify    http://127.0.0.1:${RAPPORT_NOTIFY_PORT:-8004}
  workers   /healthz /readyz /metrics on ports ${RAPPORT_INTAKE_WORKER_PORT:-8101}-${RAPPORT_NOTIFY_WORKER_PORT:-8104}
  Kafka     127.0.0.1:${RAPPORT_KAFKA_PORT:-9092}   MongoDB protocol (FerretDB) 127.0.0.1:${RAPPORT_MONGO_PORT:-27017}
Stop it with: make down
EOT
