#!/usr/bin/env bash
# System calls per message of each qspool command that moves messages, counted by strace -c -f,
# beside the floor's (bench/floor.c). Counts, not times: repeatable on a noisy machine.
#
#   bench/syscalls.sh          # N=1000 messages for the batch commands
#   N=5000 bench/syscalls.sh
#
# One-message commands (push, push --no-sync, pop --ack, pop, ack) run once on a spool that
# already holds a few messages; batch commands (push --lines, push --lines --no-sync,
# pop --json -n N --ack, work -q -- true) run over N messages and are divided by N. Each row
# shows the total per message and the calls that make up most of it.

set -euo pipefail
export LC_ALL=C
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${N:-1000}
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "syscalls.sh: N must be a positive integer" >&2; exit 2; }
command -v strace >/dev/null 2>&1 || { echo "syscalls.sh: needs strace (Debian: strace)" >&2; exit 1; }
# Cargo says where the binary is: the target directory and the build target may be set anywhere.
Q=$(cd "$ROOT" && cargo build --release --quiet --message-format=json |
    sed -n 's/.*"executable":"\([^"]*\/qspool\)".*/\1/p' | tail -n 1)
[ -x "$Q" ] || { echo "$0: cargo built no qspool binary" >&2; exit 1; }
WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/qspool-syscalls.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
gcc -O2 -o "$WORK/floor" "$ROOT/bench/floor.c"
unset QSPOOL_DIR

# row LABEL PER CMD...: strace -c -f of CMD (stdin from $WORK/in), divided by PER
row() {
    local label=$1 per=$2
    shift 2
    strace -f -c -o "$WORK/st" "$@" <"$WORK/in" >/dev/null
    awk -v l="$label" -v per="$per" '
        /^-/ || /^% time/ || NF < 4 { next }
        { calls = ($4 ~ /^[0-9]+$/) ? $4 : $3; name = $NF
          if (name == "total") total = calls; else c[name] = calls }
        END {
            n = 0; for (k in c) { keys[++n] = k }
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
                if (c[keys[j]] > c[keys[i]]) { t = keys[i]; keys[i] = keys[j]; keys[j] = t }
            top = ""; for (i = 1; i <= n && i <= 8; i++)
                top = top sprintf("%s %.2f, ", keys[i], c[keys[i]] / per)
            printf "| %s | %.1f | %s |\n", l, total / per, substr(top, 1, length(top) - 2)
        }' "$WORK/st"
}

S=$WORK/s
: >"$WORK/in"
seq 5 | "$Q" -s "$S" push --lines --no-sync >/dev/null
echo "| Command | Syscalls per message | Largest contributors per message |"
echo "|---|---:|---|"
row "/bin/true (process start only)" 1 /bin/true
row "floor push, no fsync (a process)" 1 "$WORK/floor" push "$WORK/f1" 1
row "floor push, fsync (a process)" 1 "$WORK/floor" push "$WORK/f1" 1 sync
row "floor pop (a process)" 1 "$WORK/floor" pop "$WORK/f1"
row "qspool push (durable)" 1 "$Q" -s "$S" push hello
row "qspool push --no-sync" 1 "$Q" -s "$S" push --no-sync hello
row "qspool pop --ack" 1 "$Q" -s "$S" pop --ack
"$Q" -s "$S" pop --receipt-file "$WORK/r" >/dev/null
row "qspool ack" 1 "$Q" -s "$S" ack "$(cat "$WORK/r")"
row "qspool pop (lease only)" 1 "$Q" -s "$S" pop --receipt-file "$WORK/r2"

seq "$N" >"$WORK/in"
row "floor push x$N, no fsync (one process)" "$N" "$WORK/floor" push "$WORK/f2" "$N"
row "floor claim x$N (one process)" "$N" "$WORK/floor" claim "$WORK/f2"
row "floor push x$N, fsync (one process)" "$N" "$WORK/floor" push "$WORK/f3" "$N" sync
rm -rf "$S"
row "qspool push --lines --no-sync x$N" "$N" "$Q" -s "$S" push --lines --no-sync
row "qspool pop --json -n $N --ack" "$N" "$Q" -s "$S" pop --json -n "$N" --ack
row "qspool push --lines x$N (durable)" "$N" "$Q" -s "$S" push --lines
: >"$WORK/in"
row "qspool work -q -- true x$N (CMD's own calls included)" "$N" "$Q" -s "$S" work -q -- true
