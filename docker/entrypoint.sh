#!/bin/sh
# The container's entry point: `triplegain "$@"`, its exit code passed on, except 2.
#
# Exit 2 is a user's mistake (a setting, an argument, a replay its account is past), printed above in one line:
# starting again cannot fix it, so this exits 0 and `restart: on-failure` leaves the container stopped instead of
# restarting it in a loop. Any other failure (1, 75 a database outage) exits as it is and is restarted.
# SIGTERM and SIGINT are passed to triplegain, which stops cleanly (docker stop, docker compose down).

# The traps are set before triplegain starts, so a signal that comes at once is not lost (nor kills this shell):
# until the child's pid is known it is kept and passed on right after.
child=""
pending=""
forward() {
    if [ -n "$child" ]; then kill -"$1" "$child" 2>/dev/null; else pending=$1; fi
}
trap 'forward TERM' TERM
trap 'forward INT' INT
triplegain "$@" &
child=$!
if [ -n "$pending" ]; then kill -"$pending" "$child" 2>/dev/null; fi
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
