#!/usr/bin/env bash
# Stop what deploy/local/up.sh started, by the pid in <repo>/.state/<svc>.pid: SIGTERM, wait up to
# 60 s, then SIGKILL; the pid file is removed. A service that up.sh did not start (no pid file) is
# left alone. Never kills by name.
# Usage: deploy/local/down.sh [kafka|cassandra|sentiment|all]      (default: all)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STOP_TIMEOUT="${MYSIMBDP_STOP_TIMEOUT:-60}"

# start_time PID: the process's start time (field 22 of /proc/PID/stat), empty when it is gone.
start_time() {
  local stat rest
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  rest="${stat##*) }"
  # shellcheck disable=SC2086
  set -- $rest
  echo "${20}"
}

# still_there PID START: the same process (same start time) still exists with a live thread.
# An exiting JVM loses its cmdline, and then shows as a zombie (its main thread is done), seconds
# before its last threads end and its ports close: wait for those threads, not for pid_alive.
still_there() {
  local pid=$1 want=$2 stat rest
  stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
  rest="${stat##*) }"
  # shellcheck disable=SC2086
  set -- $rest
  [[ "${20}" == "$want" ]] || return 1
  [[ "$1" != Z ]] && return 0
  # zombie leader: gone once no other thread is left (the parent, init, reaps it)
  local n
  n="$(ls "/proc/$pid/task" 2>/dev/null | wc -l)"
  (( n > 1 ))
}

stop_one() {
  local svc=$1 pidf pid
  pidf="$(pid_file "$svc")"
  if [[ ! -f "$pidf" ]]; then
    log "$svc: no pid file, nothing to stop (not started by up.sh)"
    return 0
  fi
  pid="$(tr -dc '0-9' <"$pidf")"
  if ! pid_alive "$svc" "$pid"; then
    log "$svc: pid ${pid:-?} from the pid file is not running; removing the stale pid file"
    rm -f "$pidf"
    return 0
  fi
  local started; started="$(start_time "$pid")"
  log "$svc: stopping pid $pid (SIGTERM)"
  kill -TERM "$pid" 2>/dev/null || true
  local t0=$SECONDS
  while still_there "$pid" "$started"; do
    if (( SECONDS - t0 >= STOP_TIMEOUT )); then
      log "$svc: still running after ${STOP_TIMEOUT}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
      break
    fi
    sleep 0.5
  done
  if still_there "$pid" "$started"; then
    die "$svc: pid $pid survived SIGKILL"
  fi
  rm -f "$pidf"
  log "$svc: stopped after $((SECONDS - t0)) s"
}

# Stop Kafka before Cassandra (order does not matter to them; it keeps the output readable).
for svc in $(services_from_arg "${1:-all}"); do
  stop_one "$svc"
done
