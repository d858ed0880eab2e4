#!/usr/bin/env bash
# What does `push --key` cost against a plain push?
#
#   bench/keys.sh
#   BENCH_PUSHES=1000 BENCH_DEPTH=100000 bench/keys.sh
#
# One-shot pushes, K per row, the rows alternated over R rounds so that the disk's moods fall
# on all of them alike; each row prints the median of its rounds' per-push times in µs:
#   plain         `push TEXT`
#   key, fresh    `push --key k-N TEXT`, a new key each time (the record is made)
#   key, held     `push --key k-1 TEXT` of a key a ready message holds (nothing is pushed)
#   key, acked    the same after that message was acked (held for the window)
# and the same four with --no-sync. Then the look-up a stale record costs (the record names a
# file the message has left without its rewrite, as after a crash): one `push --key` on a
# spool of BENCH_DEPTH ready messages, against one whose record is right.
#
# Environment:
#   BENCH_PUSHES   pushes per row per round          [300]
#   BENCH_ROUNDS   rounds                            [3]
#   BENCH_DEPTH    ready messages for the look-up    [100000]
#   BENCH_DIR      where the temporary spools go     [$TMPDIR or /tmp]
#   BENCH_QSPOOL   a qspool binary to measure instead of building this tree
#
# Timings print; nothing is asserted but the counts.

set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
K=${BENCH_PUSHES:-300}
ROUNDS=${BENCH_ROUNDS:-3}
DEPTH=${BENCH_DEPTH:-100000}

if [ -n "${BENCH_QSPOOL:-}" ]; then
    Q=$BENCH_QSPOOL
else
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
    Q=$ROOT/target/release/qspool
fi
WORK_DIR=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/qspool-keys.XXXXXX")
trap 'rm -rf "$WORK_DIR"' EXIT

now_ns() { date +%s%N; }

# row NAME SYNC: K pushes of that kind on a fresh spool; prints µs per push.
row() {
    local kind=$1 sync=$2 spool t0 t1 i
    spool=$WORK_DIR/$kind$sync.$RANDOM
    "$Q" -s "$spool" init >/dev/null
    case $kind in
        held) "$Q" -s "$spool" push --key k-1 first >/dev/null ;;
        acked)
            "$Q" -s "$spool" push --key k-1 first >/dev/null
            "$Q" -s "$spool" pop --ack >/dev/null
            ;;
    esac
    t0=$(now_ns)
    for i in $(seq "$K"); do
        case $kind in
            plain) "$Q" -s "$spool" push $sync "message $i" ;;
            fresh) "$Q" -s "$spool" push $sync --key "k-$i" "message $i" ;;
            held | acked) "$Q" -s "$spool" push $sync --key k-1 "message $i" ;;
        esac
    done >/dev/null
    t1=$(now_ns)
    local want=$K
    case $kind in held) want=1 ;; acked) want=0 ;; esac
    local got
    got=$("$Q" -s "$spool" stats --json | sed 's/^{"ready":\([0-9]*\).*/\1/')
    [ "$got" = "$want" ] || { echo "$kind$sync: $got ready, want $want" >&2; exit 1; }
    echo $(((t1 - t0) / 1000 / K))
    rm -rf "$spool"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A times
for _ in $(seq "$ROUNDS"); do
    for sync in "" "--no-sync"; do
        for kind in plain fresh held acked; do
            times[$kind$sync]+="$(row "$kind" "$sync") "
        done
    done
done
printf '%-22s %10s %10s\n' "one-shot push, µs" durable --no-sync
for kind in plain fresh held acked; do
    a=$(tr ' ' '\n' <<<"${times[$kind]}" | grep . | median)
    b=$(tr ' ' '\n' <<<"${times[$kind--no-sync]}" | grep . | median)
    printf '%-22s %10s %10s\n' "$kind" "$a" "$b"
done

# --- the look-up of a stale record ------------------------------------------------------------
spool=$WORK_DIR/deep
"$Q" -s "$spool" init >/dev/null
seq "$DEPTH" | "$Q" -s "$spool" push --lines --no-sync >/dev/null
"$Q" -s "$spool" push --key deep first >/dev/null
rec=$(ls "$spool"/keys/*)
good=$(cat "$rec")
# The same record naming a ready file the message is not in.
stale=${good/,v1/,v2}
one() {
    local t0 t1
    t0=$(now_ns)
    "$Q" -s "$spool" push --key deep again >/dev/null
    t1=$(now_ns)
    echo $(((t1 - t0) / 1000))
}
declare -a right wrong
for _ in 1 2 3 4 5; do
    printf '%s' "$good" >"$rec"
    right+=("$(one)")
    printf '%s' "$stale" >"$rec"
    wrong+=("$(one)")
done
printf 'push --key of a held key at %d ready, µs: record right %s, record stale %s\n' "$DEPTH" \
    "$(printf '%s\n' "${right[@]}" | median)" "$(printf '%s\n' "${wrong[@]}" | median)"
