#!/usr/bin/env bash
# `make down`: stop everything `make up` started (the whole process group), then wait for it to exit.
set -uo pipefail
cd "$(dirname "$0")/../.."
pidfile=${RAPPORT_STATE_DIR:-.rapport}/platform.pid
if [[ ! -f $pidfile ]] || ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "Rapport is not running."
  rm -f "$pidfile"
  exit 0
fi
pid=$(cat "$pidfile")
kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
for _ in $(seq 1 60); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.5
done
if kill -0 "$pid" 2>/dev/null; then
  echo "Still running after 30 s; killing." >&2
  kill -KILL -- "-$pid" 2>/dev/null || true
fi
rm -f "$pidfile"
echo "Rapport stopped."
