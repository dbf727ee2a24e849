#!/usr/bin/env bash
# Measures the LiteLLM proxy beside Loupe's gateway on the shared nginx mock upstream, in one run
# of loupe-bench-gateway: installs LiteLLM ('litellm[proxy]' from PyPI) in its own venv when
# missing, starts it on 127.0.0.1:4000 with one model routed to the mock upstream, runs the
# bench with --litellm, and stops it.
#
# Usage: crates/bench/litellm.sh [extra loupe-bench-gateway arguments, e.g. --rates 1000 --secs 5]
set -euo pipefail
cd "$(dirname "$0")/../.."

venv="${LOUPE_LITELLM_VENV:-$HOME/.cache/loupe/litellm-venv}"
if [ ! -x "$venv/bin/litellm" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'litellm[proxy]'
fi
/work/shared/bench/mock-upstream/start.sh >/dev/null

work="$(mktemp -d)"
trap 'kill "$litellm_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
cat > "$work/config.yaml" <<'YAML'
model_list:
  - model_name: mock-gpt
    litellm_params:
      model: openai/mock-gpt
      api_base: http://127.0.0.1:18080/v1
      api_key: sk-mock
YAML
# Loopback only, and without authentication like the gateway the bench starts, so both proxies
# do the same work per call.
LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY=true \
  "$venv/bin/litellm" --config "$work/config.yaml" --host 127.0.0.1 --port 4000 --num_workers 1 \
  > "$work/litellm.log" 2>&1 &
litellm_pid=$!
for _ in $(seq 1 120); do
  if curl -sf http://127.0.0.1:4000/health/liveliness >/dev/null; then break; fi
  sleep 1
done
curl -sf http://127.0.0.1:4000/health/liveliness >/dev/null || { cat "$work/litellm.log"; exit 1; }

cargo run --release -q -p bench --bin loupe-bench-gateway -- --litellm http://127.0.0.1:4000 "$@"
