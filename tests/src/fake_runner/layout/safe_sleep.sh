#!/bin/bash
# safe_sleep.sh of the fake actions runner: sleeps $1 seconds, as the real
# runner's (actions/runner, src/Misc/layoutroot/safe_sleep.sh) does when
# `sleep` exists, and busy-waits otherwise.
if [ -x "$(command -v sleep)" ]; then
    sleep "$1"
    exit 0
fi
SECONDS=0
while [[ $SECONDS -lt $1 ]]; do
    :
done
