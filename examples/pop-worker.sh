#!/usr/bin/env bash
# pop-worker.sh: the `qspool pop | worker` loop, acked only when the worker succeeds.
#
# Usage: pop-worker.sh WORKER [ARGS...]
#
# Each message's payload goes to WORKER's standard input, which WORKER must read to the end
# (if it exits first, pop cannot finish writing, releases the lease and fails, and so does
# this loop). WORKER exits 0: the message is acked. Anything else: it is requeued, visible
# again after RETRY_DELAY (or, after its last attempt, moved to dead/). If this script or the machine dies mid-message, nothing is acked,
# the lease expires, and the message is delivered again: at-least-once.
#
#   QSPOOL_DIR    the spool (default: qspool's own default spool)
#   IDLE          exit 0 once nothing has been visible for this long, e.g. 30s
#                 (default: wait for messages forever). The worker then runs once more, on
#                 empty input, as the last stage of a pipeline always starts; nothing is
#                 acked for that run, but it should do nothing when its input is empty.
#   LEASE         how long WORKER may take before the message may go to another consumer
#                 (default: the spool's lease, 30s unless set by `qspool init --lease`)
#   RETRY_DELAY   how long a failed message stays invisible (default 30s)
#
# `qspool work -- WORKER` does the same job and more (it extends the lease while WORKER runs,
# backs off exponentially, stops cleanly on SIGTERM); this loop is for when you want the
# pieces in your own hands.

set -u

if [ "$#" -eq 0 ]; then
    echo "usage: pop-worker.sh WORKER [ARGS...]" >&2
    exit 2
fi

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
receipt=$tmp/receipt
# SIGTERM or SIGINT: finish (ack or requeue) the message in hand, then exit. bash runs the
# trap once the running pipeline ends; a signal to the whole process group (Ctrl-C, systemd)
# also ends a pop that is waiting, and stops the worker, whose message is then requeued.
stop=
trap 'stop=1' INT TERM

pop=(qspool pop "--wait${IDLE:+=$IDLE}" --receipt-file "$receipt")
[ -n "${LEASE:-}" ] && pop+=(--lease "$LEASE")

while :; do
    # No `set -o pipefail` here: PIPESTATUS gives both statuses, and they mean different
    # things. pop writes the receipt file before the payload and removes any old one first,
    # so after pop exits 0 the file holds this message's receipt and nothing else.
    "${pop[@]}" | "$@"
    status=("${PIPESTATUS[@]}")
    case ${status[0]} in
        0) ;;       # pop leased one message and wrote all of it
        3) exit 0 ;; # IDLE ran out with nothing visible (the worker ran on empty input, and
                     # its status means nothing: there is no receipt to ack)
        *) exit "${status[0]}" ;; # an error, already reported by qspool on stderr, or
                                  # pop was killed by a signal
    esac
    # Read the receipt only now, after pop exited 0: never a stale one.
    r=$(<"$receipt") || exit 1
    if [ "${status[1]}" -eq 0 ]; then
        qspool ack "$r"
    else
        qspool requeue --delay "${RETRY_DELAY:-30s}" "$r"
    fi
    case $? in
        0) ;;
        4) ;; # the lease was lost (the worker outlived it): the message goes to someone
              # else, or back to the queue; qspool said so on stderr. Use a longer LEASE.
        *) exit 1 ;;
    esac
    [ -z "$stop" ] || exit 0
done
