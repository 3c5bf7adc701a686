# Sourced by the local stack scripts: daemons tracked by pid files.
# Callers define log().

# A pid is alive if it exists and is not a zombie (in a container the reaper
# may be slow to collect daemons that exited).
proc_alive() {
  local stat
  stat=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ -n $stat && $stat != Z* ]]
}

# A pid file left by a daemon that died may now name an unrelated process:
# pid_alive also checks the command name (the pid file's base name).
pid_alive() {
  local pidfile=$1 pid comm
  [[ -f $pidfile ]] || return 1
  pid=$(cat "$pidfile")
  proc_alive "$pid" || return 1
  comm=$(ps -o comm= -p "$pid" 2>/dev/null)
  [[ $comm == "$(basename "$pidfile" .pid)" ]]
}

# TERM the daemon of a pid file, KILL it after 10 s, remove the pid file.
stop_pidfile() {
  local pidfile=$1 name=$2 pid i
  [[ -f $pidfile ]] || return 0
  pid=$(cat "$pidfile")
  if pid_alive "$pidfile"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      proc_alive "$pid" || break
      sleep 0.1
    done
    if proc_alive "$pid"; then
      log "$name did not stop on TERM; killing"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}
