#!/usr/bin/env bash
# Measures the floor of an extra proxy hop beside Loupe's gateway, in one run of
# loupe-bench-gateway: starts nginx (Debian `nginx`, one worker, keep-alive upstream
# connections) on 127.0.0.1:18081 as a plain `proxy_pass` to the shared mock upstream on
# 127.0.0.1:18080, runs the bench with `--baseline nginx=...` (the bench also starts its own
# bare axum + reqwest forwarder), and stops nginx.
#
# Usage: crates/bench/floor.sh [extra loupe-bench-gateway arguments, e.g. --rates 1000 --secs 5]
set -euo pipefail
cd "$(dirname "$0")/../.."

/work/shared/bench/mock-upstream/start.sh >/dev/null
work="$(mktemp -d)"
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log warn;
daemon on;
events { worker_connections 8192; multi_accept on; }
http {
    access_log off;
    tcp_nodelay on;
    keepalive_requests 1000000;
    client_body_buffer_size 1m;
    client_body_temp_path $work/body;
    proxy_temp_path $work/proxy;
    fastcgi_temp_path $work/fastcgi;
    uwsgi_temp_path $work/uwsgi;
    scgi_temp_path $work/scgi;
    upstream mock { server 127.0.0.1:18080; keepalive 256; }
    server {
        listen 127.0.0.1:18081 backlog=4096;
        location / {
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
CONF
nginx -c "$work/nginx.conf"
trap 'kill "$(cat "$work/nginx.pid")" 2>/dev/null || true; sleep 0.2; rm -rf "$work"' EXIT

cargo run --release -q -p bench --bin loupe-bench-gateway -- --baseline nginx=http://127.0.0.1:18081 "$@"
