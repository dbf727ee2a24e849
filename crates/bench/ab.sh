#!/usr/bin/env bash
# A/B comparison of loupe builds under the same OTLP load: starts each given binary in turn
# (fresh data dir, the given config file), runs loupe-bench-ingest against it, and prints
# spans acknowledged per second and per server CPU-second (user + system time of the server
# process, which other work on a shared machine disturbs less than wall-clock rates).
#
# Usage: crates/bench/ab.sh CONFIG.toml BIN_A BIN_B [BIN_B BIN_A ...]
#   e.g. crates/bench/ab.sh /dev/null /tmp/loupe-old target/release/loupe target/release/loupe /tmp/loupe-old
# Load (environment): AB_CONCURRENCY workers (default 8), AB_SECS seconds per binary (12),
# AB_TRACES traces of 8 spans per request (25).
# Build the load generator first: cargo build --release -p bench --bin loupe-bench-ingest
set -euo pipefail
cd "$(dirname "$0")/../.."

config="$1"
shift
target="${CARGO_TARGET_DIR:-target}"
load="$target/release/loupe-bench-ingest"
[ -x "$load" ] || { echo "build $load first: cargo build --release -p bench --bin loupe-bench-ingest" >&2; exit 1; }
ticks_per_sec="$(getconf CLK_TCK)"
for bin in "$@"; do
  data="$(mktemp -d)"
  LOUPE_LOG=warn "$bin" serve --http-addr 127.0.0.1:14318 --grpc-addr 127.0.0.1:14317 \
    --data-dir "$data" --config "$config" >"$data.log" 2>&1 &
  pid=$!
  sleep 1.5
  out="$("$load" --url http://127.0.0.1:14318 --concurrency ${AB_CONCURRENCY:-8} --duration ${AB_SECS:-12} \
    --traces-per-request ${AB_TRACES:-25} --query-samples 0 2>&1 | grep 'spans acknowledged')"
  spans="$(sed -E 's/.*acknowledged: ([0-9]+) in.*/\1/' <<<"$out")"
  rate="$(sed -E 's/.*= ([0-9]+) spans\/s.*/\1/' <<<"$out")"
  ticks="$(awk '{print $14 + $15}' "/proc/$pid/stat")"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "$data" "$data.log"
  echo "$bin: $rate spans/s, $((spans * ticks_per_sec / ticks)) spans per server CPU-second"
done
