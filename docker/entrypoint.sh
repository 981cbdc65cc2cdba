#!/bin/sh
# The container's entry point: `triplegain "$@"`, its exit code passed on, except 2.
#
# Exit 2 is a user's mistake (a setting, an argument, a replay its account is past), printed above in one line:
# starting again cannot fix it, so this exits 0 and `restart: on-failure` leaves the container stopped instead of
# restarting it in a loop. Any other failure (1, 75 a database outage) exits as it is and is restarted.
# SIGTERM and SIGINT are passed to triplegain, which stops cleanly (docker stop, docker compose down).

triplegain "$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM
trap 'kill -INT "$child" 2>/dev/null' INT
wait "$child"
code=$?
# A signal ends `wait` early (with 128 + its number) while triplegain is still stopping: wait for its own code.
while kill -0 "$child" 2>/dev/null; do
    wait "$child"
    code=$?
done
if [ "$code" -eq 2 ]; then
    echo "triplegain exited with 2: a mistake in the settings or the arguments (the line above); not restarted" \
        "until it is fixed (then: docker compose up -d)" >&2
    exit 0
fi
exit "$code"
