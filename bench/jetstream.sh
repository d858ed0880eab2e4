#!/usr/bin/env bash
# Rates on a JetStream queue against the local spool, and against a plain JetStream client.
#
#   bench/jetstream.sh
#   BENCH_ONE=1000 BENCH_MANY=100000 bench/jetstream.sh
#
# Starts its own nats-server (JetStream, file storage, loopback, a temporary directory) and
# prints messages per second for:
#   push, one process per message          local (durable, --no-sync) and JetStream
#   pop --ack, one process per message     local and JetStream
#   push --lines, one process              local and JetStream (BENCH_MANY messages)
#   drain with pop --json -n 500 --ack     local and JetStream
#   work -j 8 -- true on BENCH_WORK        local and JetStream (one CMD per message)
#   relay of BENCH_MANY local messages     local spool → JetStream queue
#   a plain client (nats-py, if importable) publishing BENCH_MANY with every PubAck awaited,
#   then fetching them 500 at a time and acking each: the engine's own cost, without qspool.
# Figures, never assertions; only the counts are checked.
#
# Environment:
#   BENCH_ONE      messages per one-process-per-message row   [300]
#   BENCH_MANY     messages per batched row and for relay      [20000]
#   BENCH_WORK     messages for the work rows                  [2000]
#   BENCH_DIR      scratch directory                           [$TMPDIR or /tmp]
#   BENCH_QSPOOL   a qspool binary to measure instead of building this tree

set -euo pipefail
export LC_ALL=C
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ONE=${BENCH_ONE:-300}
MANY=${BENCH_MANY:-20000}
WORK=${BENCH_WORK:-2000}
die() { echo "jetstream.sh: $*" >&2; exit 1; }
command -v nats-server >/dev/null || die "needs nats-server (Debian: apt-get install nats-server)"
unset QSPOOL_DIR

if [ -n "${BENCH_QSPOOL:-}" ]; then
    Q=$BENCH_QSPOOL
else
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
    Q=$ROOT/target/release/qspool
fi
W=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/qspool-js.XXXXXX")
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nats-server -js -a 127.0.0.1 -p "$PORT" -sd "$W/nats" 2>"$W/nats.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$W"' EXIT
for _ in $(seq 100); do grep -q "Server is ready" "$W/nats.log" && break; sleep 0.05; done
grep -q "Server is ready" "$W/nats.log" || die "nats-server did not start: $(cat "$W/nats.log")"

n=0
fresh_js() { n=$((n + 1)); URL="nats://127.0.0.1:$PORT/q$n"; "$Q" -s "$URL" init >/dev/null; }
fresh_dir() { n=$((n + 1)); DIR="$W/spool$n"; "$Q" -s "$DIR" init >/dev/null; }
now() { date +%s%N; }
rate() { # rate COUNT START_NS END_NS
    python3 -c "import sys; c,a,b=map(int,sys.argv[1:]); print(f'{c*1e9/(b-a):10.0f}')" "$1" "$2" "$3"
}
row() { printf '| %-44s | %-10s | %10s |\n' "$1" "$2" "$3"; }
count_ready() { "$Q" -s "$1" stats --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["ready"])'; }

one_push() { # one_push SPOOL [FLAGS]
    local s=$1 t0 t1 i; shift
    t0=$(now); for ((i = 0; i < ONE; i++)); do "$Q" -s "$s" push "$@" "m$i" >/dev/null; done; t1=$(now)
    [ "$(count_ready "$s")" = "$ONE" ] || die "push: wrong count on $s"
    rate "$ONE" "$t0" "$t1"
}
one_pop() { # one_pop SPOOL
    local s=$1 t0 t1 i
    t0=$(now); for ((i = 0; i < ONE; i++)); do "$Q" -s "$s" pop --ack >/dev/null; done; t1=$(now)
    [ "$(count_ready "$s")" = 0 ] || die "pop: $s not drained"
    rate "$ONE" "$t0" "$t1"
}
many_push() {
    local s=$1 t0 t1
    t0=$(now); seq "$MANY" | "$Q" -s "$s" push --lines >/dev/null; t1=$(now)
    [ "$(count_ready "$s")" = "$MANY" ] || die "push --lines: wrong count on $s"
    rate "$MANY" "$t0" "$t1"
}
many_drain() {
    local s=$1 t0 t1 got=0 out
    t0=$(now)
    while out=$("$Q" -s "$s" pop --json -n 500 --ack); do got=$((got + $(printf '%s\n' "$out" | wc -l))); done
    t1=$(now)
    [ "$got" = "$MANY" ] || die "drain: $got of $MANY from $s"
    rate "$MANY" "$t0" "$t1"
}

echo "nats-server $(nats-server --version | awk '{print $2}'), $(nproc) cores; $ONE one-shot, $MANY batched"
echo
row "workload" "spool" "msg/s"
echo "|---|---|---|"
fresh_dir; row "push, one process per message" "local" "$(one_push "$DIR")"
fresh_dir; row "push --no-sync, one process per message" "local" "$(one_push "$DIR" --no-sync)"
fresh_js; row "push, one process per message" "JetStream" "$(one_push "$URL")"
fresh_js; row "push --no-sync, one process per message" "JetStream" "$(one_push "$URL" --no-sync)"
fresh_dir; one_push "$DIR" --no-sync >/dev/null; row "pop --ack, one process per message" "local" "$(one_pop "$DIR")"
fresh_js; one_push "$URL" --no-sync >/dev/null; sleep 0.2; row "pop --ack, one process per message" "JetStream" "$(one_pop "$URL")"
fresh_dir; row "push --lines, one process" "local" "$(many_push "$DIR")"
row "pop --json -n 500 --ack until empty" "local" "$(many_drain "$DIR")"
fresh_js; row "push --lines, one process" "JetStream" "$(many_push "$URL")"
row "pop --json -n 500 --ack until empty" "JetStream" "$(many_drain "$URL")"
many_work() { # many_work SPOOL: work -j 8 runs `true` for WORK messages
    local s=$1 t0 t1
    seq "$WORK" | "$Q" -s "$s" push --lines --no-sync >/dev/null
    t0=$(now); "$Q" -s "$s" work -j 8 --quiet -- true; t1=$(now)
    [ "$(count_ready "$s")" = 0 ] || die "work: $s not drained"
    rate "$WORK" "$t0" "$t1"
}
fresh_dir; row "work -j 8 -- true" "local" "$(many_work "$DIR")"
fresh_js; row "work -j 8 -- true" "JetStream" "$(many_work "$URL")"

fresh_dir; seq "$MANY" | "$Q" -s "$DIR" push --lines --no-sync >/dev/null; fresh_js
t0=$(now); "$Q" -s "$DIR" relay --to "$URL" --quiet; t1=$(now)
[ "$(count_ready "$URL")" = "$MANY" ] || die "relay: wrong count"
row "relay, local to JetStream" "both" "$(rate "$MANY" "$t0" "$t1")"

if python3 -c 'import nats' 2>/dev/null; then
    fresh_js
    python3 - "$PORT" "q$n" "$MANY" <<'EOF' | while IFS=$'\t' read -r what r; do row "plain client (nats-py): $what" "JetStream" "$r"; done
import asyncio, sys, time
import nats
port, queue, many = sys.argv[1], sys.argv[2], int(sys.argv[3])
async def main():
    nc = await nats.connect(f"nats://127.0.0.1:{port}")
    js = nc.jetstream()
    subject = f"qspool.{queue}"
    t = time.perf_counter()
    for start in range(0, many, 256):
        acks = [js.publish(subject, f"m{i}".encode()) for i in range(start, min(start + 256, many))]
        await asyncio.gather(*acks)
    print(f"publish, PubAck each\t{many / (time.perf_counter() - t):.0f}")
    sub = await js.pull_subscribe(subject, durable="qspool", stream=f"QSPOOL_{queue}")
    t, got = time.perf_counter(), 0
    while got < many:
        msgs = await sub.fetch(500, timeout=5)
        for m in msgs:
            await m.ack_sync()
        got += len(msgs)
    print(f"fetch 500, ack each\t{many / (time.perf_counter() - t):.0f}")
    await nc.close()
asyncio.run(main())
EOF
else
    echo "(nats-py is not importable: the plain-client rows are skipped; pip install nats-py)"
fi
