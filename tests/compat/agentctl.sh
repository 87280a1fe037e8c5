#!/usr/bin/env bash
# Acts on one agent of a cluster that lib.sh's cluster_start made, for
# programs other than the runner's shell (the Java cluster runner):
#
#   agentctl.sh CLUSTER_DIR start|kill9|stop I   (stop = SIGTERM, SIGKILL after 10 s)
#   agentctl.sh CLUSTER_DIR formed [SECONDS]     wait until every live agent lists exactly the live agents
#   agentctl.sh CLUSTER_DIR alive I
#
# Exit status 0 on success; what went wrong on stderr.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/cluster_lib.sh"

(($# >= 2)) || { echo "usage: agentctl.sh CLUSTER_DIR start|kill9|stop|alive I | formed [SECONDS]" >&2; exit 2; }
BROKER_DIR="$1"
action="$2"
[[ -f "$BROKER_DIR/agents" ]] || { echo "agentctl.sh: $BROKER_DIR holds no cluster" >&2; exit 2; }
case "$action" in
    start | kill9 | stop | alive)
        if ! (($# == 3)) || ! [[ "$3" =~ ^[0-9]+$ ]] || (($3 >= $(cluster_n))); then
            echo "agentctl.sh: $action needs an agent index below $(cluster_n)" >&2; exit 2
        fi
        "agent_$action" "$3" ;;
    formed) cluster_wait_formed "${3:-20}" ;;
    *) echo "agentctl.sh: unknown action '$action'" >&2; exit 2 ;;
esac
