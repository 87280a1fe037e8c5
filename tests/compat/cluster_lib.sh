# shellcheck shell=bash
# A cluster of agents for the shell compat runners: N streamhouse processes
# that share one data dir (and on pg-s3 one database and one store prefix),
# each on its own port, with a short agent lease so that a killed agent is
# reaped within seconds. Sourced by lib.sh (cluster_start and the
# cluster-aware broker_* functions are there), and on its own by agentctl.sh,
# through which other programs (the Java cluster runner) kill and restart
# agents.
#
# Everything about the agents is in files of the cluster's dir ($BROKER_DIR),
# so that the runner and agentctl.sh act on the same processes:
#   agents          N
#   agent-I.cmd     agent I's command line, NUL-separated
#   agent-I.port    its port (it keeps it across restarts)
#   agent-I.pid     the pid of its current process
#   agent-I.log     its log; every start appends
#
#   agent_start I          start agent I (again); waits until it accepts TCP
#   agent_kill9 I          SIGKILL; returns once it is gone
#   agent_stop I           SIGTERM, SIGKILL after COMPAT_AGENT_STOP_S (10) s;
#                          status 1 if it needed the SIGKILL
#   agent_alive I
#   cluster_wait_formed [SECONDS]
#                          until Metadata through every live agent lists
#                          exactly the live agents (default 20 s); status 1
#                          and what each listed on stderr if not
#   cluster_n              N (0 if $BROKER_DIR holds no cluster)

: "${COMPAT_AGENT_LEASE_MS=2000}"
: "${COMPAT_AGENT_STOP_S:=10}"
: "${BROKER_READY_TIMEOUT_S:=30}"

cluster_n() { cat "$BROKER_DIR/agents" 2>/dev/null || echo 0; }
agent_port() { cat "$BROKER_DIR/agent-$1.port"; }
agent_pid() { cat "$BROKER_DIR/agent-$1.pid" 2>/dev/null; }
agent_log() { echo "$BROKER_DIR/agent-$1.log"; }

# Agents are not children of the runner's shell (see agent_start), so a
# zombie never counts as alive: the state field of /proc/PID/stat decides.
agent_alive() {
    local pid state
    pid="$(agent_pid "$1")"
    [[ -n "$pid" ]] || return 1
    state="$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)"
    [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

# `env -u` arguments for every STREAMHOUSE_* setting of the environment but
# STREAMHOUSE_LOG and _CACHE: the flags are what a test means.
sh_broker_env_args() {
    local v
    for v in $(compgen -e | grep '^STREAMHOUSE_' | grep -vxE 'STREAMHOUSE_(LOG|CACHE)'); do printf '%s\n' -u "$v"; done
}

agent_start() {
    local i="$1" port log
    local -a cmd unset_env
    port="$(agent_port "$i")"
    log="$(agent_log "$i")"
    mapfile -d '' cmd <"$BROKER_DIR/agent-$i.cmd"
    mapfile -t unset_env < <(sh_broker_env_args)
    echo "=== start at $(date +%T): ${cmd[*]}" >>"$log"
    # Started from a subshell that exits at once: the agent is adopted by
    # init (or the nearest subreaper), which reaps it whoever kills it.
    (env ${unset_env[@]+"${unset_env[@]}"} NO_COLOR=1 "${cmd[@]}" >>"$log" 2>&1 </dev/null &
        echo $! >"$BROKER_DIR/agent-$i.pid")
    local deadline=$((SECONDS + BROKER_READY_TIMEOUT_S))
    while ((SECONDS < deadline)); do
        if ! agent_alive "$i"; then
            {
                echo "agent $i exited before accepting connections on 127.0.0.1:$port"
                echo "command: ${cmd[*]}"
                echo "--- $log (tail) ---"; tail -n 40 "$log"
            } >&2
            return 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    {
        echo "agent $i did not accept connections on 127.0.0.1:$port within ${BROKER_READY_TIMEOUT_S} s"
        echo "--- $log (tail) ---"; tail -n 40 "$log"
    } >&2
    agent_kill9 "$i"
    return 1
}

# Waits up to $2 seconds (default 5) for agent $1 to be gone.
agent_wait_gone() {
    local i="$1" deadline=$(($(date +%s%3N) + ${2:-5} * 1000))
    while agent_alive "$i"; do
        (($(date +%s%3N) < deadline)) || return 1
        sleep 0.05
    done
}

agent_kill9() {
    agent_alive "$1" || return 0
    kill -KILL "$(agent_pid "$1")" 2>/dev/null
    agent_wait_gone "$1" 5
}

agent_stop() {
    agent_alive "$1" || return 0
    kill -TERM "$(agent_pid "$1")" 2>/dev/null
    agent_wait_gone "$1" "$COMPAT_AGENT_STOP_S" && return 0
    echo "agent $1 did not exit within ${COMPAT_AGENT_STOP_S} s of SIGTERM; SIGKILL" >&2
    agent_kill9 "$1"
    return 1
}

# The host:port of every broker Metadata through agent $1 lists, sorted.
agent_listed_brokers() {
    timeout 10 kcat -b "127.0.0.1:$(agent_port "$1")" -L -m 5 2>/dev/null |
        sed -n 's/^  broker -\{0,1\}[0-9]* at \([^ ]*\).*/\1/p' | sort
}

cluster_wait_formed() {
    local deadline=$((SECONDS + ${1:-20})) n i want ok
    n="$(cluster_n)"
    while :; do
        want="$(for ((i = 0; i < n; i++)); do agent_alive "$i" && echo "127.0.0.1:$(agent_port "$i")"; done | sort)"
        ok=1
        for ((i = 0; i < n; i++)); do
            agent_alive "$i" || continue
            [[ "$(agent_listed_brokers "$i")" == "$want" ]] || { ok=0; break; }
        done
        ((ok)) && return 0
        ((SECONDS < deadline)) || break
        sleep 0.3
    done
    {
        echo "the cluster did not form within ${1:-20} s: live agents ${want//$'\n'/ }"
        for ((i = 0; i < n; i++)); do
            agent_alive "$i" && echo "  agent $i (127.0.0.1:$(agent_port "$i")) lists: $(agent_listed_brokers "$i" | tr '\n' ' ')"
        done
    } >&2
    return 1
}
