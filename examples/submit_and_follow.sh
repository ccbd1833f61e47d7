#!/usr/bin/env bash
# Submit a job file and follow it until it finishes: ./examples/submit_and_follow.sh examples/digits-relu.json
set -euo pipefail
# The token: TRAINRX_TOKEN, else the admin token `make run` wrote to var/dev-token.
BASE=${TRAINRX_URL:-http://127.0.0.1:8000}
TOKEN=${TRAINRX_TOKEN:-$(cat "${TRAINRX_DATA_DIR:-var}/dev-token")}
curl() { command curl -H "Authorization: Bearer $TOKEN" "$@"; }
job=$(curl -sS -X POST "$BASE/v1/jobs" -H 'Content-Type: application/json' -d @"${1:-examples/digits-relu.json}")
id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$job")
echo "job $id"
while :; do
  status=$(curl -sS "$BASE/v1/jobs/$id" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["status"], j["progress"]["epoch"], "/", j["progress"]["epochs"])')
  echo "$status"
  case "$status" in succeeded*|failed*|cancelled*) break;; esac
  sleep 1
done
curl -sS "$BASE/v1/jobs/$id/diagnosis"; echo
curl -sS -o "$id.safetensors" "$BASE/v1/jobs/$id/weights" && echo "weights: $id.safetensors"
