#!/usr/bin/env bash
# The peers table of docs/peers.md: the reference gateway, the LiteLLM proxy and, when
# PORTKEY_DIR names a directory with `@portkey-ai/gateway` and `bun` installed from npm, the
# Portkey gateway, one after the other, in front of the same `harness mock --profile fast`,
# driven by the same harness runs.
#
#   cargo build --release -p harness
#   LITELLM=~/.venvs/litellm/bin/litellm PORTKEY_DIR=~/peers/portkey \
#     bash docs/peers/measure.sh [OUT_DIR]
#
# Every server listens on 127.0.0.1 (Portkey, which has no bind option, on all interfaces), is
# driven on loopback only and is stopped at the end. Prints one line per run; the run
# directories (summary.json, report.html) and overhead.json files are under OUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."

harness=target/release/harness
litellm=${LITELLM:-litellm}
out=${1:-target/gatebench/peers}
seconds=${SECONDS_PER_RUN:-20}
mkdir -p "$out"
export PEER_KEY=sk-gatebench-1234
pids=()
# Each gateway's process, whose RSS and CPU (with its workers') the runs read.
declare -A pid_of
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT

"$harness" mock --port 9000 --profile fast 2>"$out/mock.log" &
pids+=($!)
"$harness" gateway --upstream http://127.0.0.1:9000 --port 8080 2>"$out/gateway.log" &
pids+=($!)
pid_of[reference]=$!
env LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR LITELLM_MODE=PRODUCTION \
  "$litellm" --config docs/peers/litellm.yaml --host 127.0.0.1 --port 4000 \
  --num_workers "${LITELLM_WORKERS:-1}" >"$out/litellm.log" 2>&1 &
pids+=($!)
pid_of[litellm]=$!
gateways=(reference:8080 litellm:4000)
if [[ -n ${PORTKEY_DIR:-} ]]; then
  # Bun, not Node: under Node 20 its streamed answers fail (see docs/peers.md).
  (cd "$PORTKEY_DIR" && exec node_modules/bun/bin/bun.exe \
    node_modules/@portkey-ai/gateway/build/start-server.js --port=8787 --headless) \
    >"$out/portkey.log" 2>&1 &
  pids+=($!)
  pid_of[portkey]=$!
  gateways+=(portkey:8787)
fi

# The headers each gateway needs besides the key: Portkey takes its upstream per request.
extra() {
  case $1 in
    portkey) echo --header x-portkey-provider:openai \
      --header x-portkey-custom-host:http://127.0.0.1:9000/v1 ;;
  esac
}

wait_for() {
  for _ in $(seq 1 240); do
    curl -sf "$1" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "no answer from $1" >&2
  return 1
}
wait_for http://127.0.0.1:9000/v1/models
wait_for http://127.0.0.1:8080/health
wait_for http://127.0.0.1:4000/health/readiness
[[ -z ${PORTKEY_DIR:-} ]] || wait_for http://127.0.0.1:8787/

# LiteLLM initialises lazily on its first requests: warm every gateway up before measuring.
for side in "${gateways[@]}"; do
  # shellcheck disable=SC2046 # extra's words are separate arguments
  "$harness" scenario streaming --target "http://127.0.0.1:${side#*:}" --api-key-env PEER_KEY \
    $(extra "${side%%:*}") --users 4 --duration 5s --quiet --out "$out/warmup" \
    >/dev/null 2>&1 || true
done

# One closed-model streaming run: "NAME users=N rps=R failed=F ttft_p50=.. ttft_p99=.. e2e_p50=..
# e2e_p99=.. (ms) cpu_us=.. (the gateway's CPU per request, workers included) rss_mb=.. (peak)".
row() {
  local name=$1 url=$2 users=$3 dir="$out/$1-$3"
  rm -rf "$dir"
  # The scenario's SLOs do not matter here: 0, 2 and 4 all measured the run.
  # shellcheck disable=SC2046
  "$harness" scenario streaming --target "$url" --api-key-env PEER_KEY $(extra "$name") \
    --users "$users" --duration "${seconds}s" --gateway-pid "${pid_of[$name]}" --quiet \
    --out "$dir" >/dev/null 2>&1 || true
  python3 - "$name" "$users" "$dir"/*/ <<'PY'
import csv, json, sys
name, users, run = sys.argv[1], sys.argv[2], sys.argv[3]
summary = json.load(open(run + "summary.json"))
rows = {r["metric"]: r for r in csv.DictReader(open(run + "percentiles.csv"))}
totals = summary["totals"]
rps = totals["requests"] / summary["wall_time"]
failed = sum(totals["errors"].values())
cpu = [s["cpu_percent"] for s in summary["gateway"] if s.get("cpu_percent") is not None]
rss = max((s["rss_bytes"] for s in summary["gateway"] if s.get("rss_bytes")), default=0)
cpu_us = sum(cpu) / len(cpu) / 100 * 1e6 / rps if cpu and rps else float("nan")
print(f"{name} users={users} rps={rps:.1f} failed={failed} "
      f"ttft_p50={rows['ttft']['p50']} ttft_p99={rows['ttft']['p99']} "
      f"e2e_p50={rows['latency']['p50']} e2e_p99={rows['latency']['p99']} "
      f"cpu_us={cpu_us:.0f} rss_mb={rss / 1e6:.0f}")
PY
}

for users in 1 16 64; do
  for side in "${gateways[@]}"; do
    row "${side%%:*}" "http://127.0.0.1:${side#*:}" "$users"
  done
done

for side in "${gateways[@]}"; do
  # shellcheck disable=SC2046
  "$harness" overhead --target "http://127.0.0.1:${side#*:}" --direct http://127.0.0.1:9000 \
    --api-key-env PEER_KEY $(extra "${side%%:*}") --concurrency 1,16,64 --stream on \
    --rounds 4 --out "$out/overhead-${side%%:*}"
done
