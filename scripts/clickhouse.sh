#!/usr/bin/env bash
# Starts (or stops) a private ClickHouse server for Loupe's tests and benchmarks.
#
#   scripts/clickhouse.sh start   install the Debian package clickhouse-server when missing, start a
#                                 server on loopback only, wait until it answers, and print
#                                 CLICKHOUSE_URL=http://127.0.0.1:18123/
#   scripts/clickhouse.sh stop    stop the server this script started (data is kept)
#   scripts/clickhouse.sh status  print CLICKHOUSE_URL when the server answers, exit 1 otherwise
#
# The server keeps its data, logs and a generated minimal config under
# ${LOUPE_CLICKHOUSE_DIR:-$HOME/.cache/loupe/clickhouse}. It listens on 127.0.0.1 only, on
# ${LOUPE_CLICKHOUSE_HTTP_PORT:-18123} (HTTP) and ${LOUPE_CLICKHOUSE_TCP_PORT:-19000} (native);
# no interserver, MySQL or PostgreSQL ports are opened. `start` is idempotent: when the server
# already answers it only prints the URL.
set -euo pipefail

dir="${LOUPE_CLICKHOUSE_DIR:-$HOME/.cache/loupe/clickhouse}"
http_port="${LOUPE_CLICKHOUSE_HTTP_PORT:-18123}"
tcp_port="${LOUPE_CLICKHOUSE_TCP_PORT:-19000}"
url="http://127.0.0.1:${http_port}/"
pid_file="$dir/clickhouse-server.pid"

log() { printf 'clickhouse.sh: %s\n' "$*" >&2; }

answers() {
  [ "$(curl -fsS --max-time 2 "${url}?query=SELECT%201" 2>/dev/null || true)" = "1" ]
}

# The server binary: Debian's package ships /usr/sbin/clickhouse-server; upstream packages ship
# one `clickhouse` binary with a `clickhouse-server` symlink.
server_bin() {
  if command -v clickhouse-server >/dev/null 2>&1; then
    command -v clickhouse-server
  elif [ -x /usr/sbin/clickhouse-server ]; then
    echo /usr/sbin/clickhouse-server
  elif [ -x /usr/bin/clickhouse ]; then
    echo "/usr/bin/clickhouse server"
  else
    return 1
  fi
}

install_server() {
  log "installing the Debian package clickhouse-server"
  apt-get update -qq >/dev/null
  # The package's maintainer script would start the system-wide service; Loupe runs its own.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server >/dev/null
}

write_config() {
  mkdir -p "$dir/etc" "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/log"
  # `<yandex>` is the root element every release accepts (newer ones also accept
  # `<clickhouse>`). Caches are kept small: this server shares a small machine.
  cat >"$dir/etc/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>$dir/log/clickhouse-server.log</log>
        <errorlog>$dir/log/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>3</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$http_port</http_port>
    <tcp_port>$tcp_port</tcp_port>
    <max_connections>256</max_connections>
    <keep_alive_timeout>10</keep_alive_timeout>
    <max_concurrent_queries>64</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <users_config>$dir/etc/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
</yandex>
EOF
  cat >"$dir/etc/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

start() {
  if answers; then
    echo "CLICKHOUSE_URL=$url"
    return 0
  fi
  local bin
  if ! bin="$(server_bin)"; then
    install_server
    bin="$(server_bin)"
  fi
  write_config
  log "starting $bin with data in $dir"
  # setsid: the server outlives this script and the shell that ran it. setsid execs the server
  # in place (this job is not a process group leader), so $! is the server's pid.
  # shellcheck disable=SC2086 # $bin may be "clickhouse server" (two words).
  setsid $bin --config-file="$dir/etc/config.xml" \
    >>"$dir/log/stdout.log" 2>&1 </dev/null &
  echo "$!" >"$pid_file"
  local deadline=$((SECONDS + 90))
  until answers; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "the server did not answer within 90s; last log lines:"
      tail -n 20 "$dir/log/clickhouse-server.err.log" "$dir/log/stdout.log" >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.2
  done
  echo "CLICKHOUSE_URL=$url"
}

stop() {
  if [ ! -s "$pid_file" ]; then
    if answers; then
      log "a server answers on $url but was not started from $dir; leaving it alone"
      return 1
    fi
    return 0
  fi
  local pid
  pid="$(cat "$pid_file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    local deadline=$((SECONDS + 60))
    while kill -0 "$pid" 2>/dev/null; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        log "server $pid did not stop within 60s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.2
    done
  fi
  rm -f "$pid_file"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status)
    if answers; then echo "CLICKHOUSE_URL=$url"; else exit 1; fi
    ;;
  *)
    echo "usage: $0 [start|stop|status]" >&2
    exit 2
    ;;
esac
