#!/usr/bin/env bash
# The benchmark suite: builds usersync and the benchmark examples, installs the reference server
# (scim2-server, from PyPI) into a venv if missing, starts every server on loopback with a fresh data
# directory, runs each workload several times with examples/loadgen.rs and writes docs/benchmarks.md.
#
#   bench/run.sh                 full run (N = 10,000 and 100,000)
#   BENCH_QUICK=1 bench/run.sh   smoke run with small N
#   BENCH_CHURN=1 bench/run.sh   also the churn example (examples/churn.rs: the store's size under 50
#                                rounds of a 20,000-member group replaced and 5,000 users made and deleted)
#   BENCH_CHURN=only bench/run.sh   the churn example alone; prints its figures, writes no report
#
# Environment: BENCH_QUICK, BENCH_RUNS (runs per measurement), BENCH_RUNS_LARGE (runs at the large N),
# BENCH_PEER_RUNS_LARGE (scim2-server's runs at the large N), BENCH_CHURN, BENCH_CHURN_ROUNDS (default 50; 5
# with BENCH_QUICK), BENCH_PEER_MAX_SECONDS (time cap of each
# scim2-server phase), BENCH_HOME (venv, data, raw results; default ~/.cache/usersync-bench), BENCH_OUT
# (the report; default docs/benchmarks.md), CARGO_TARGET_DIR.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
# (grep finds nothing when no option is set: that is not a failure)
command_line="$(env | { grep -E '^(BENCH_[A-Z_]+|CARGO_TARGET_DIR)=' || true; } | sort | tr '\n' ' ')bench/run.sh"
# What is measured: the commit built now.
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src Cargo.toml Cargo.lock examples 2>/dev/null || commit="$commit (with uncommitted changes)"

home=${BENCH_HOME:-$HOME/.cache/usersync-bench}
out=${BENCH_OUT:-$repo/docs/benchmarks.md}
target_dir=${CARGO_TARGET_DIR:-$repo/target}
if [ "${BENCH_QUICK:-0}" = 1 ]; then
  runs=${BENCH_RUNS:-1}
  runs_large=${BENCH_RUNS_LARGE:-$runs}
  peer_runs_large=${BENCH_PEER_RUNS_LARGE:-1}
  peer_cap=${BENCH_PEER_MAX_SECONDS:-20}
  n_small=500 n_large=2000 sizes=10,200,2000 samples=50 read_seconds=3
else
  runs=${BENCH_RUNS:-3}
  runs_large=${BENCH_RUNS_LARGE:-3}
  peer_runs_large=${BENCH_PEER_RUNS_LARGE:-1}
  peer_cap=${BENCH_PEER_MAX_SECONDS:-120}
  n_small=10000 n_large=100000 sizes=10,10000,100000 samples=200 read_seconds=10
fi
clients=32          # import and durability clients (the issue's numbers)
connections=64      # read connections
# scim2-server's listen backlog is 5 and it closes every connection: at 32 clients dropped SYNs (1 s
# retransmits) cut its throughput several times, so it is measured at the concurrency it does best with.
peer_clients=4

# --- tools --------------------------------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
  fi
  command -v wrk >/dev/null || { echo "bench: wrk is needed (Debian package wrk)" >&2; exit 1; }
fi
churn=${BENCH_CHURN:-0}
if [ "${BENCH_QUICK:-0}" = 1 ]; then churn_rounds=${BENCH_CHURN_ROUNDS:-5}; else churn_rounds=${BENCH_CHURN_ROUNDS:-50}; fi
# churn: the store's size under steady churn, measured by examples/churn.rs (one JSON line per round, then a
# summary line); writes its lines to the file $1.
run_churn() {
  cargo build --release --example churn
  "$target_dir/release/examples/churn" --rounds "$churn_rounds" | tee "$1" ||
    echo "bench: the store grew past the churn bound (see the summary line)" >&2
}
if [ "$churn" = only ]; then
  mkdir -p "$home/results"
  run_churn "$home/results/$(date -u +%Y%m%dT%H%M%SZ)-churn.jsonl"
  exit 0
fi
cargo build --release --bin usersync --example loadgen --example ceiling
usersync_bin=$target_dir/release/usersync
loadgen=$target_dir/release/examples/loadgen
ceiling_bin=$target_dir/release/examples/ceiling

venv=$home/venv
if [ ! -x "$venv/bin/scim2-server" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check scim2-server
fi

mkdir -p "$home/results" "$home/data"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results=$home/results/$stamp.jsonl
work=$(mktemp -d "$home/data/$stamp.XXXX")
: >"$results"
token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
admin_token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export BENCH_TOKEN=$token BENCH_ADMIN_TOKEN=$admin_token

# --- servers ------------------------------------------------------------------------------------------------
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Waits for the line a server prints when ready ("listening on http://ADDR", "Serving SCIM on
# http://ADDR/v2"); prints ADDR.
wait_addr() {
  local log=$1 pid=$2 addr=
  for _ in $(seq 1 200); do
    addr=$(sed -n 's|.* on http://\([0-9.:]*\).*|\1|p' "$log" | head -1)
    if [ -n "$addr" ]; then echo "$addr"; return; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench: server did not start:" >&2
  cat "$log" >&2
  exit 1
}

# start_usersync DURABILITY: sets pid, base, data.
start_usersync() {
  data=$(mktemp -d "$work/usersync.XXXX")
  USERSYNC_SCIM_TOKEN=$token USERSYNC_ADMIN_TOKEN=$admin_token RUST_LOG=warn "$usersync_bin" serve \
    --listen 127.0.0.1:0 --data "$data/store" --durability "$1" >"$data/log" 2>&1 &
  pid=$!
  pids+=("$pid")
  base="http://$(wait_addr "$data/log" "$pid")/scim/v2"
}

# start_peer: sets pid, base. A free port is taken from the kernel, then handed to the server.
start_peer() {
  local dir port
  dir=$(mktemp -d "$work/scim2.XXXX")
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  PYTHONUNBUFFERED=1 "$venv/bin/scim2-server" --hostname 127.0.0.1 --port "$port" --bearer-token "$token" \
    >"$dir/log" 2>&1 &
  pid=$!
  pids+=("$pid")
  base="http://$(wait_addr "$dir/log" "$pid")/v2"
}

# start_ceiling BYTES: sets pid, base.
start_ceiling() {
  local dir
  dir=$(mktemp -d "$work/ceiling.XXXX")
  "$ceiling_bin" --listen 127.0.0.1:0 --body-bytes "$1" >"$dir/log" 2>&1 &
  pid=$!
  pids+=("$pid")
  base="http://$(wait_addr "$dir/log" "$pid")"
}

stop() {
  local left=() p
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || left+=("$p"); done
  pids=("${left[@]}")
}

measure() {
  "$loadgen" "$@" | tee -a "$results"
}

echo "bench: results in $results" >&2

# --- workload 1: Okta-style import and lookup ----------------------------------------------------------------
for n in $n_small $n_large; do
  if [ "$n" = "$n_large" ]; then r=$runs_large; pr=$peer_runs_large; else r=$runs; pr=$runs; fi
  for run in $(seq 1 "$r"); do
    start_usersync sync
    measure import --base "$base" --target usersync --run "$run" --users "$n" --clients $clients
    stop "$pid"
    rm -rf "$data"
    if [ "$run" -le "$pr" ]; then
      start_peer
      measure import --base "$base" --target scim2-server --run "$run" --users "$n" --clients $peer_clients \
        --max-seconds "$peer_cap"
      stop "$pid"
    fi
  done
done

# --- workloads 2 and 6: Entra-style group sync; footprint at the largest size -------------------------------
for run in $(seq 1 "$runs_large"); do
  start_usersync sync
  measure groups --base "$base" --target usersync --run "$run" --sizes "$sizes" --samples $samples \
    --clients $clients --pid "$pid" --data "$data/store"
  stop "$pid"
  rm -rf "$data"
done

# --- workload 3: read throughput ------------------------------------------------------------------------------
start_usersync sync
us_base=$base
setup=$("$loadgen" read --base "$us_base" --setup-only)
us_path=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["path"])' "$setup")
bytes=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["bytes"])' "$setup")
start_peer
peer_base=$base
setup=$("$loadgen" read --base "$peer_base" --setup-only)
peer_path=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["path"])' "$setup")
start_ceiling "$bytes"
ceiling_base=$base
for run in $(seq 1 "$runs"); do
  measure read --wrk --base "$us_base" --target usersync --run "$run" --path "$us_path" \
    --connections $connections --seconds $read_seconds
  measure read --wrk --base "$peer_base" --target scim2-server --run "$run" --path "$peer_path" \
    --connections $peer_clients --seconds $read_seconds
  measure read --wrk --base "$ceiling_base" --target ceiling --run "$run" --path "$us_path" \
    --connections $connections --seconds $read_seconds
done
for p in "${pids[@]}"; do stop "$p"; done

# --- workload 4: rules ---------------------------------------------------------------------------------------
# usersync only (scim2-server has no rule engine): users in 50 groups with 50 rules built over SCIM and the
# admin API, the re-evaluation after reversing the rules' order, previews, and the in-memory loop.
for run in $(seq 1 "$runs_large"); do
  start_usersync sync
  measure rules --base "$base" --target usersync --run "$run" --users "$n_large" --clients $clients
  stop "$pid"
  rm -rf "$data"
done

# --- workload 5: durability cost ------------------------------------------------------------------------------
for run in $(seq 1 "$runs"); do
  for mode in sync relaxed; do
    start_usersync "$mode"
    measure import --base "$base" --target usersync --run "$run" --users "$n_small" --clients $clients \
      --phases create --workload durability --case "$mode"
    stop "$pid"
    rm -rf "$data"
  done
done

# --- workload 7: admin API look-ups ---------------------------------------------------------------------------
# examples/admin_lookup.rs starts usersync in process (relaxed durability) with N users in the rules of
# workload 4 among 10,000 directory groups, then times explanations, group searches and preview views.
cargo build --release --example admin_lookup
for run in $(seq 1 "$runs_large"); do
  "$target_dir/release/examples/admin_lookup" 10000 "$n_large" "$run" | tee -a "$results"
done

# --- churn (optional): the store's size under steady churn ----------------------------------------------------
if [ "$churn" = 1 ]; then
  run_churn "$home/results/$stamp-churn.jsonl"
fi

# --- workload 8: other clients beside the largest requests ---------------------------------------------------
for run in $(seq 1 "$runs"); do
  start_usersync sync
  measure abuse --base "$base" --target usersync --run "$run" --attackers 4 --clients 4 \
    --seconds $read_seconds
  stop "$pid"
  rm -rf "$data"
done

# --- report ---------------------------------------------------------------------------------------------------
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
peer_version=$("$venv/bin/pip" show scim2-server 2>/dev/null | sed -n 's/^Version: //p')
mkdir -p "$(dirname "$out")"
generated=$work/report.md
"$loadgen" report "$results" --out "$generated" \
  --meta "Command: \`$command_line\`" \
  --meta "Date: $(date -u '+%Y-%m-%d %H:%M UTC')" \
  --meta "Machine: $(nproc) cores (nproc), $cpu, $(free -g | awk '/^Mem:/ {print $2}') GiB, Linux $(uname -r)" \
  --meta "usersync commit $commit; scim2-server $peer_version; $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)" \
  --meta "Sizes: N = $n_small and $n_large; runs per measurement $runs ($runs_large at N = $n_large, scim2-server $peer_runs_large); scim2-server phases capped at $peer_cap s"
if [ "$churn" = 1 ]; then
  python3 - "$home/results/$stamp-churn.jsonl" >>"$generated" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
s = next(l for l in lines if l.get("summary"))
mb = lambda b: f"{b / 1e6:,.1f}"
print(f"""
## Churn: the store's size under steady churn

`examples/churn.rs`, {s['rounds']} rounds, each replacing a {s['group']:,}-member group's members with other ids
(SCIM PUT) and creating then deleting {s['users']:,} users over HTTP (`{s['durability']}` durability), the server
compacting by itself; {s['seconds']:,.0f} s.

| data directory after round 1 (MB) | peak (MB) | final (MB) | records at the end (MB) | bound | within |
| ---: | ---: | ---: | ---: | --- | --- |
| {mb(s['bytesAfterRound1'])} | {mb(s['peakBytes'])} | {mb(s['finalBytes'])} | {mb(s['finalLiveBytes'])} | peak under {s['bound']} | {'yes' if s['withinBound'] else 'no'} |""")
PY
fi
# Only the generated section is replaced: what follows its end marker (figures measured by hand) is kept.
begin='<!-- bench/run.sh: generated section begins -->'
end='<!-- bench/run.sh: generated section ends -->'
{
  echo "$begin"
  cat "$generated"
  echo "$end"
  if [ -f "$out" ] && grep -qF "$end" "$out"; then
    sed -n "\|$end|,\$p" "$out" | sed 1d
  elif [ -f "$out" ]; then
    echo "bench: $out has no end marker; only the generated section is written" >&2
  fi
} >"$work/spliced.md"
mv "$work/spliced.md" "$out"
echo "bench: wrote $out" >&2
