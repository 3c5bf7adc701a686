#!/bin/bash
# run.sh of the fake actions runner (gha-testkit). It behaves as the real
# runner's run.sh (actions/runner, src/Misc/layoutroot/run.sh):
#
# - its directory is found by following symlinks to the real file, so the
#   copy below lands beside the real run.sh, never beside a link to it;
# - each round copies run-helper.sh.template to run-helper.sh in that
#   directory (a read-only runner root fails here: cp complains, the helper
#   cannot start, and this script exits 0, or 127 with the trap below),
#   then runs the helper, which runs bin/Runner.Listener;
# - helper exit 2 means "restart": another round; exit 7 with
#   ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE=1 is passed on;
#   anything else ends the script with 0, whatever the job's result;
# - only when RUNNER_MANUALLY_TRAP_SIG is set (to anything) does it trap
#   SIGINT and SIGTERM and send SIGINT to the helper's process group; it
#   then waits for the helper and exits with the helper's status, or the
#   interrupted wait's (130 for SIGINT, 143 for SIGTERM). Without it, a
#   signal to this script alone does not reach the listener.
#
# Arguments are passed on unquoted ($*), exactly as the real script does.
# RUNNER_UPDATE_CA_CERTS is not emulated.

SOURCE="${BASH_SOURCE[0]}"
while [ -h "$SOURCE" ]; do
    DIR="$(cd -P "$(dirname "$SOURCE")" && pwd)"
    SOURCE="$(readlink "$SOURCE")"
    [[ $SOURCE != /* ]] && SOURCE="$DIR/$SOURCE"
done
DIR="$(cd -P "$(dirname "$SOURCE")" && pwd)"

deprecated_version_exit() {
    [[ "$ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE" == "1" && $1 -eq 7 ]]
}

run() {
    while :; do
        cp -f "$DIR"/run-helper.sh.template "$DIR"/run-helper.sh
        # shellcheck disable=SC2048,SC2086 # unquoted, as the real run.sh
        "$DIR"/run-helper.sh $*
        returnCode=$?
        if [[ $returnCode -eq 2 ]]; then
            echo "Restarting runner..."
        elif deprecated_version_exit "$returnCode"; then
            echo "Exiting runner..."
            exit "$returnCode"
        else
            echo "Exiting runner..."
            exit 0
        fi
    done
}

runWithManualTrap() {
    # Job control: the helper runs in a process group of its own.
    set -m
    trap 'kill -INT -$PID' INT TERM
    while :; do
        cp -f "$DIR"/run-helper.sh.template "$DIR"/run-helper.sh
        # shellcheck disable=SC2048,SC2086 # unquoted, as the real run.sh
        "$DIR"/run-helper.sh $* &
        PID=$!
        wait $PID
        returnCode=$?
        if [[ $returnCode -eq 2 ]]; then
            echo "Restarting runner..."
        elif deprecated_version_exit "$returnCode"; then
            echo "Exiting runner..."
            exit "$returnCode"
        else
            echo "Exiting runner..."
            trap - INT TERM
            # The helper may still be finishing after a signal.
            wait $PID
            exit $returnCode
        fi
    done
}

if [[ -z "$RUNNER_MANUALLY_TRAP_SIG" ]]; then
    # shellcheck disable=SC2048,SC2086
    run $*
else
    # shellcheck disable=SC2048,SC2086
    runWithManualTrap $*
fi
