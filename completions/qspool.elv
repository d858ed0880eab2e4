
use builtin;
use str;

set edit:completion:arg-completer[qspool] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'qspool'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'qspool'= {
            cand -s 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --spool 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --nats-creds 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool'
            cand --trust-spool 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand init 'Create a spool, or change its stored defaults'
            cand push 'Push messages: each TEXT is one message; with none, standard input is one message'
            cand pop 'Lease the message that has been visible longest and print its payload'
            cand ack 'Acknowledge leased messages: they are done and leave the queue'
            cand requeue 'Give leases back early (a nack), or return every expired lease to the queue'
            cand extend 'Extend (or shorten) a lease: it now expires DUR from now. Prints the new receipt'
            cand bury 'Move leased messages straight to dead/, whatever attempts remain (a poison message)'
            cand stats 'The shape of the queue: per state its messages, bytes and oldest, by age; foreign entries'
            cand list 'List messages, oldest first (by first push, across states), without reading a payload'
            cand dlq-replay 'Move dead messages back to the queue, attempts reset, ids unchanged. Prints the ids moved'
            cand replay 'Move acked messages back to the queue, attempts reset, ids unchanged. Prints the ids moved'
            cand pause 'Stop all consumption: pop exits 3 and says why, work holds off, waiting pops keep waiting'
            cand resume 'Restart consumption after `qspool pause`, and wake every waiting pop and work at once'
            cand purge 'Delete messages for good: acked (done/), dead-lettered (dead/) or waiting (new/). Prints the ids removed, one per line'
            cand work 'Run CMD once per message, with the payload on its standard input; CMD''s exit code decides'
            cand relay 'Forward the local spool to a JetStream queue: the spool as a durable outbox'
            cand show 'Print one message''s payload, whatever its state, without leasing it or changing anything'
            cand fsck 'Check a spool against its format, and with --repair, set aside what does not belong'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'qspool;init'= {
            cand --max-attempts 'Leases a message may have before it is dead-lettered (at least 1)'
            cand --lease 'Default lease length, e.g. 30s, 5m, 1m30s'
            cand --retain-done 'How long acked messages stay in done/ before `requeue --expired` (or `stats`) removes them [default: 1d]'
            cand --rate 'Spool-wide limit on leases started, by every pop and work together: N/s, N/m, N/h or N/DUR (as in 5/10s); `off` removes it'
            cand --burst 'How many leases the spool-wide limit allows at once after a quiet spell [default: 1]'
            cand --dedup-window 'How long an acked message keeps its `push --key` from being pushed again [default: 5m]'
            cand --replicas 'JetStream queues only: how many servers keep a copy of each stream (1, 3 or 5 in a cluster) [default: 1]'
            cand -s 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --spool 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --nats-creds 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool'
            cand --trust-spool 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'qspool;push'= {
            cand --delay 'Keep the messages invisible for this long, e.g. 90s, 1h'
            cand --key 'Push the message only if no message with this dedup key is ready, delayed or leased, or was acked within the spool''s dedup window (init --dedup-window, 5m by default); otherwise print that message''s id. 1 to 128 bytes; one message per push'
            cand --group 'Deliver the messages of group G one at a time, in push order: while one is out (ready, delayed or leased), the next waits. 1 to 128 bytes'
            cand -s 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --spool 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --nats-creds 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool'
            cand -f 'Each argument names a file; the file''s contents is one message'
            cand --file 'Each argument names a file; the file''s contents is one message'
            cand --lines 'Each line of standard input is one message (empty lines skipped), pushed as one batch'
            cand -0 'Like --lines, with NUL-separated input, as xargs -0 reads it'
            cand --null 'Like --lines, with NUL-separated input, as xargs -0 reads it'
            cand --no-sync 'Skip the fsyncs: faster, but a crash may lose messages whose ids were printed'
            cand --json 'Print one JSON object per message: id, pushed (false when --key found the key held, and id is the holder''s), and key'
            cand --trust-spool 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'qspool;pop'= {
            cand --lease 'Lease length [default: the spool''s, 30s unless set by init]'
            cand --receipt-file 'Also write the receipt (one per line with -n) to FILE'
            cand -n 'Lease up to N messages (needs --json)'
            cand --max 'Lease up to N messages (needs --json)'
            cand --wait 'Block until a message is visible: forever, or at most DUR (then exit 3). The value needs the `=`, as in --wait=30s'
            cand -s 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --spool 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --nats-creds 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool'
            cand --json 'Print one JSON object per message: id, receipt, attempt, enqueued_at, lease_expires_at, size, and body (UTF-8) or body_base64'
            cand --ack 'Ack once the payload is written: at-most-once delivery'
            cand --trust-spool 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'qspool;ack'= {
            cand -s 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --spool 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --nats-creds 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool'
            cand --trust-spool 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'qspool;requeue'= {
            cand --delay 'Keep requeued messages invisible for this long'
            cand -s 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --spool 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --nats-creds 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool'
            cand --expired 'Return every expired lease, print what moved, remove tmp/ leftovers older than 36h, and purge acked messages past the spool''s retain-done time'
            cand --trust-spool 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'qspool;extend'= {
            cand --lease 'New lease length, counted from now [default: the spool''s]'
            cand -s 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --spool 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --nats-creds 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool'
            cand --trust-spool 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'qspool;bury'= {
            cand -s 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --spool 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --nats-creds 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool'
            cand --trust-spool 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'qspool;stats'= {
            cand --output 'Write the metrics to FILE instead, atomically (through a temporary file beside it whose name does not end in .prom), mode 0644'
            cand --watch 'Look again every DUR (2s without a value; it needs the `=`) until interrupted: the table is redrawn on a terminal; JSON and metrics are printed (or written) anew each time'
            cand -s 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --spool 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --nats-creds 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool'
            cand --json 'Print one JSON object'
            cand --prometheus 'Print node_exporter''s textfile format: per state the messages, their bytes and the age of the oldest; and the foreign entries. Each series is labelled with the spool''s path'
            cand --trust-spool 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'qspool;list'= {
            cand --limit 'Only the N oldest'
            cand -s 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --spool 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --nats-creds 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool'
            cand --all 'Include done (acked) messages too'
            cand --json 'Print one JSON object per message: id, state, attempt, enqueued_at, visible_at, lease_expires_at or finished_at, state_since (where the name records it), size'
            cand --trust-spool 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'qspool;dlq-replay'= {
            cand --limit 'Replay at most N messages'
            cand -s 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --spool 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --nats-creds 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool'
            cand --all 'Replay every dead message, oldest first'
            cand --trust-spool 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'qspool;replay'= {
            cand --since 'Replay the messages acked within the last DUR'
            cand --limit 'Replay at most N messages'
            cand -s 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --spool 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --nats-creds 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool'
            cand --done 'Replay acked messages (from done/)'
            cand --all 'Replay every acked message still retained'
            cand --trust-spool 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'qspool;pause'= {
            cand -s 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --spool 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --nats-creds 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool'
            cand --trust-spool 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'qspool;resume'= {
            cand -s 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --spool 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --nats-creds 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool'
            cand --trust-spool 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'qspool;purge'= {
            cand --older-than 'Only messages that entered their state at least this long ago (for ready ones: became visible; delayed ones never qualify)'
            cand -s 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --spool 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --nats-creds 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool'
            cand --done 'Purge done/ (acked messages)'
            cand --dead 'Purge dead/ (dead-lettered messages)'
            cand --ready 'Purge new/: ready and delayed messages, never delivered or waiting for a retry'
            cand --yes 'Confirm deleting ready or dead messages without naming them'
            cand --trust-spool 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'qspool;work'= {
            cand --lease 'Lease length; extended while CMD runs [default: the spool''s, 30s unless set by init] (directories only)'
            cand --backoff 'Delay before the first retry of a failed message; it doubles with each attempt'
            cand --backoff-max 'Longest delay between retries'
            cand --grace 'How long CMDs may run on after SIGTERM before they are killed'
            cand -n 'Run CMD at most N times (a message retried within the run counts again), then exit'
            cand --max 'Run CMD at most N times (a message retried within the run counts again), then exit'
            cand --wait 'Keep waiting for messages until signalled, or until idle for DUR. The value needs the `=`, as in --wait=10m'
            cand --rate 'Start at most this many CMDs in this process: N/s, N/m, N/h or N/DUR. A spool-wide limit (init --rate) holds as well'
            cand --burst 'How many CMDs --rate lets start at once after a quiet spell [default: 1]'
            cand -j 'Run up to K CMDs at once; with 1, messages run one at a time in queue order'
            cand --concurrency 'Run up to K CMDs at once; with 1, messages run one at a time in queue order'
            cand -s 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --spool 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --nats-creds 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool'
            cand -q 'No line per message that was acked, requeued or dead-lettered, and the summary only when something failed (lost leases, stops and errors are still reported)'
            cand --quiet 'No line per message that was acked, requeued or dead-lettered, and the summary only when something failed (lost leases, stops and errors are still reported)'
            cand --trust-spool 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'qspool;relay'= {
            cand --to 'The JetStream queue to forward to: nats://[USER:PASS@]HOST[:PORT]/NAME or tls://…'
            cand --wait 'Keep relaying until signalled, or until idle for DUR. The value needs the `=`, as in --wait=10m'
            cand -j 'Publishes in flight at once'
            cand --concurrency 'Publishes in flight at once'
            cand -s 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --spool 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --nats-creds 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool'
            cand -q 'Print nothing but errors and outages'
            cand --quiet 'Print nothing but errors and outages'
            cand --trust-spool 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'qspool;show'= {
            cand -s 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --spool 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --nats-creds 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool'
            cand --json 'Print one JSON object: id, state, attempt, enqueued_at, the time of its state (visible_at, lease_expires_at or finished_at), size, and body (UTF-8) or body_base64'
            cand --trust-spool 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'qspool;fsck'= {
            cand -s 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --spool 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:'
            cand --nats-creds 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool'
            cand --repair 'Set aside foreign entries and duplicate copies in corrupt/, and fix modes'
            cand --json 'Print one JSON object with a findings array'
            cand --trust-spool 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'qspool;help'= {
            cand init 'Create a spool, or change its stored defaults'
            cand push 'Push messages: each TEXT is one message; with none, standard input is one message'
            cand pop 'Lease the message that has been visible longest and print its payload'
            cand ack 'Acknowledge leased messages: they are done and leave the queue'
            cand requeue 'Give leases back early (a nack), or return every expired lease to the queue'
            cand extend 'Extend (or shorten) a lease: it now expires DUR from now. Prints the new receipt'
            cand bury 'Move leased messages straight to dead/, whatever attempts remain (a poison message)'
            cand stats 'The shape of the queue: per state its messages, bytes and oldest, by age; foreign entries'
            cand list 'List messages, oldest first (by first push, across states), without reading a payload'
            cand dlq-replay 'Move dead messages back to the queue, attempts reset, ids unchanged. Prints the ids moved'
            cand replay 'Move acked messages back to the queue, attempts reset, ids unchanged. Prints the ids moved'
            cand pause 'Stop all consumption: pop exits 3 and says why, work holds off, waiting pops keep waiting'
            cand resume 'Restart consumption after `qspool pause`, and wake every waiting pop and work at once'
            cand purge 'Delete messages for good: acked (done/), dead-lettered (dead/) or waiting (new/). Prints the ids removed, one per line'
            cand work 'Run CMD once per message, with the payload on its standard input; CMD''s exit code decides'
            cand relay 'Forward the local spool to a JetStream queue: the spool as a durable outbox'
            cand show 'Print one message''s payload, whatever its state, without leasing it or changing anything'
            cand fsck 'Check a spool against its format, and with --repair, set aside what does not belong'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'qspool;help;init'= {
        }
        &'qspool;help;push'= {
        }
        &'qspool;help;pop'= {
        }
        &'qspool;help;ack'= {
        }
        &'qspool;help;requeue'= {
        }
        &'qspool;help;extend'= {
        }
        &'qspool;help;bury'= {
        }
        &'qspool;help;stats'= {
        }
        &'qspool;help;list'= {
        }
        &'qspool;help;dlq-replay'= {
        }
        &'qspool;help;replay'= {
        }
        &'qspool;help;pause'= {
        }
        &'qspool;help;resume'= {
        }
        &'qspool;help;purge'= {
        }
        &'qspool;help;work'= {
        }
        &'qspool;help;relay'= {
        }
        &'qspool;help;show'= {
        }
        &'qspool;help;fsck'= {
        }
        &'qspool;help;help'= {
        }
    ]
    $completions[$command]
}
