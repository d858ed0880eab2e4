#!/usr/bin/env bash
# run.sh: the sign-up burst, end to end. A producer pushes sign-ups five times faster than the
# email provider accepts mail; the queue absorbs the burst, and four send-email workers drain
# it at the provider's pace. Every second it prints the queue's state, so the backlog can be
# seen to grow while the producer runs and to shrink after.
#
# Usage: examples/signups/run.sh      (needs qspool on PATH)
#
#   SIGNUP_RATE=500     sign-ups per second, for SIGNUP_SECONDS=10 seconds (see produce.sh)
#   EMAIL_RATE=100      the provider's limit, per second: the spool's rate limit
#   WORKERS=4           how many send-email run at once (qspool work -j)
#   QSPOOL_DIR          the spool (default: a new one under a temporary directory)
#   SENT_LOG            where send-email records what it sent (default: beside that spool)
#
# TYPO_EVERY and TEMPFAIL_PERCENT pass through to produce.sh and send-email: the sign-ups
# with a malformed address end in dead/, and provider errors are retried with a backoff.
# Once the producer is done and nothing is ready, delayed or leased, the worker gets SIGTERM
# and the script prints what was sent.

set -u

work_dir=
if [ -z "${QSPOOL_DIR:-}" ] || [ -z "${SENT_LOG:-}" ]; then
    work_dir=$(mktemp -d) || exit 1
fi
QSPOOL_DIR=$(realpath -m -- "${QSPOOL_DIR:-$work_dir/spool}")
SENT_LOG=$(realpath -m -- "${SENT_LOG:-$work_dir/sent-emails.log}")
export QSPOOL_DIR SENT_LOG
cd "$(dirname -- "$0")" || exit 1

echo "spool $QSPOOL_DIR, sent mail in $SENT_LOG"
# The provider's limit, kept by the spool for every worker on it together.
qspool init --rate "${EMAIL_RATE:-100}/s" >/dev/null || exit 1

./produce.sh "${SIGNUP_RATE:-500}" "${SIGNUP_SECONDS:-10}" &
producer=$!
# --quiet: no line per message, only the summary (work exits 1 when any send failed, as
# some do here on purpose); send-email reports its own failures on standard error.
qspool work --wait --quiet -j "${WORKERS:-4}" -- ./send-email &
worker=$!

# One line of `qspool stats` per second.
summary() {
    qspool stats | awk -v t="$1" '{ n[$1] = $2 }
        END { printf "%3ds  ready %5d  delayed %3d  leased %2d  done %5d  dead %3d\n",
                     t, n["ready"], n["delayed"], n["leased"], n["done"], n["dead"] }'
}
# Messages not finished yet: ready, delayed, leased or expired.
pending() {
    qspool stats | awk '$1 ~ /^(ready|delayed|leased|expired)$/ { s += $2 } END { print s + 0 }'
}

produced=
quiet_checks=0
t=0
while :; do
    sleep 1
    t=$((t + 1))
    summary "$t"
    if [ -z "$produced" ] && ! kill -0 "$producer" 2>/dev/null; then
        wait "$producer"
        produced=$?
    fi
    # Two looks in a row, a second apart, so that a message caught between two directories by
    # one look cannot end the run early.
    if [ -n "$produced" ] && [ "$(pending)" -eq 0 ]; then
        quiet_checks=$((quiet_checks + 1))
        [ "$quiet_checks" -lt 2 ] || break
    else
        quiet_checks=0
    fi
done

kill -TERM "$worker"
wait "$worker"
sent=0
[ ! -f "$SENT_LOG" ] || sent=$(wc -l <"$SENT_LOG")
dead=$(qspool stats | awk '$1 == "dead" { print $2 }')
echo "sent $sent emails; $dead sign-ups in dead/"
exit "$produced"
