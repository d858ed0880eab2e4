#!/usr/bin/env bash
# produce.sh: a burst of sign-ups, pushed into the spool at a steady RATE per second for
# SECONDS seconds, one message per sign-up:
#
#   {"signup":17,"email":"user17@example.org"}
#
# Usage: produce.sh [RATE [SECONDS]]     (default: 500 per second for 10 seconds)
#
#   QSPOOL_DIR    the spool (default: qspool's own default spool)
#   TYPO_EVERY=N  every Nth sign-up has a malformed address, user17.example.org
#                 (default 100; 0 for none)
#
# The sign-ups go through one `qspool push --lines`, which makes each batch of lines durable
# as it arrives (one group commit per batch), so the producer never waits for a consumer.
# Prints how many were pushed on standard error.

set -u -o pipefail

rate=${1:-500}
seconds=${2:-10}
typo_every=${TYPO_EVERY:-100}
total=$((rate * seconds))

# $EPOCHREALTIME is seconds.microseconds; dropping the separator (a comma in some locales)
# leaves microseconds.
start=${EPOCHREALTIME//[!0-9]/}

# Every 10 ms, write the sign-ups that are due by now: the rate holds however long each
# round takes.
pushed=$(
    n=0
    while [ "$n" -lt "$total" ]; do
        now=${EPOCHREALTIME//[!0-9]/}
        due=$(((now - start) * rate / 1000000 + 1))
        [ "$due" -le "$total" ] || due=$total
        while [ "$n" -lt "$due" ]; do
            n=$((n + 1))
            if [ "$typo_every" -gt 0 ] && [ $((n % typo_every)) -eq 0 ]; then
                printf '{"signup":%d,"email":"user%d.example.org"}\n' "$n" "$n"
            else
                printf '{"signup":%d,"email":"user%d@example.org"}\n' "$n" "$n"
            fi
        done
        sleep 0.01
    done | qspool push --lines | wc -l
) || exit 1

elapsed=$((${EPOCHREALTIME//[!0-9]/} - start))
printf 'produce: pushed %d sign-ups in %d.%02ds\n' \
    "$pushed" $((elapsed / 1000000)) $((elapsed % 1000000 / 10000)) >&2
[ "$pushed" -eq "$total" ]
