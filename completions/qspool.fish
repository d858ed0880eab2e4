# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_qspool_global_optspecs
    string join \n s/spool= nats-creds= trust-spool h/help V/version
end

function __fish_qspool_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_qspool_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_qspool_using_subcommand
    set -l cmd (__fish_qspool_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c qspool -n "__fish_qspool_needs_command" -s s -l spool -d 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:' -r -F
complete -c qspool -n "__fish_qspool_needs_command" -l nats-creds -d 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool' -r -F
complete -c qspool -n "__fish_qspool_needs_command" -l trust-spool -d 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root\'s own spools are always trusted'
complete -c qspool -n "__fish_qspool_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c qspool -n "__fish_qspool_needs_command" -s V -l version -d 'Print version'
complete -c qspool -n "__fish_qspool_needs_command" -f -a "init" -d 'Create a spool, or change its stored defaults'
complete -c qspool -n "__fish_qspool_needs_command" -f -a "push" -d 'Push messages: each TEXT is one message; with none, standard input is one message'
complete -c qspool -n "__fish_qspool_needs_command" -f -a "pop" -d 'Lease the message that has been visible longest and print its payload'
complete -c qspool -n "__fish_qspool_needs_command" -f -a "ack" -d 'Acknowledge leased messages: they are done and leave the queue'
complete -c qspool -n "__fish_qspool_needs_command" -f -a "requeue" -d 'Give leases back early (a nack), or return every expired lease to the queue'
complete -c qspool -n "__fish_qspool_needs_command" -f -a "extend" -d 'Extend (or shorten) a lease: it now expires DUR from now. Prints the new receipt'
complete -c qspool -n "__fish_qspool_needs_command" -f -a "bury" -d 'Move leased messages straight to dead/, whatever attempts remain (a poison message)'
complete -c qspool -n "__fish_qspool_needs_command" -f -a "stats" -d 'The shape of the queue: per state its messages, bytes and oldest, by age; foreign entries'
complete -c qspool -n "__fish_qspool_needs_command" -f -a "list" -d 'List messages, oldest first (by first push, across states), without reading a payload'
complete -c qspool -n "__fish_qspool_needs_command" -f -a "dlq-replay" -d 'Move dead messages back to the queue, attempts reset, ids unchanged. Prints the ids moved'
complete -c qspool -n "__fish_qspool_needs_command" -f -a "replay" -d 'Move acked messages back to the queue, attempts reset, ids unchanged. Prints the ids moved'
complete -c qspool -n "__fish_qspool_needs_command" -f -a "pause" -d 'Stop all consumption: pop exits 3 and says why, work holds off, waiting pops keep waiting'
complete -c qspool -n "__fish_qspool_needs_command" -f -a "resume" -d 'Restart consumption after `qspool pause`, and wake every waiting pop and work at once'
complete -c qspool -n "__fish_qspool_needs_command" -f -a "purge" -d 'Delete messages for good: acked (done/), dead-lettered (dead/) or waiting (new/). Prints the ids removed, one per line'
complete -c qspool -n "__fish_qspool_needs_command" -f -a "work" -d 'Run CMD once per message, with the payload on its standard input; CMD\'s exit code decides'
complete -c qspool -n "__fish_qspool_needs_command" -f -a "relay" -d 'Forward the local spool to a JetStream queue: the spool as a durable outbox'
complete -c qspool -n "__fish_qspool_needs_command" -f -a "show" -d 'Print one message\'s payload, whatever its state, without leasing it or changing anything'
complete -c qspool -n "__fish_qspool_needs_command" -f -a "fsck" -d 'Check a spool against its format, and with --repair, set aside what does not belong'
complete -c qspool -n "__fish_qspool_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c qspool -n "__fish_qspool_using_subcommand init" -l max-attempts -d 'Leases a message may have before it is dead-lettered (at least 1)' -r
complete -c qspool -n "__fish_qspool_using_subcommand init" -l lease -d 'Default lease length, e.g. 30s, 5m, 1m30s' -r
complete -c qspool -n "__fish_qspool_using_subcommand init" -l retain-done -d 'How long acked messages stay in done/ before `requeue --expired` (or `stats`) removes them [default: 1d]' -r
complete -c qspool -n "__fish_qspool_using_subcommand init" -l rate -d 'Spool-wide limit on leases started, by every pop and work together: N/s, N/m, N/h or N/DUR (as in 5/10s); `off` removes it' -r
complete -c qspool -n "__fish_qspool_using_subcommand init" -l burst -d 'How many leases the spool-wide limit allows at once after a quiet spell [default: 1]' -r
complete -c qspool -n "__fish_qspool_using_subcommand init" -l dedup-window -d 'How long an acked message keeps its `push --key` from being pushed again [default: 5m]' -r
complete -c qspool -n "__fish_qspool_using_subcommand init" -l replicas -d 'JetStream queues only: how many servers keep a copy of each stream (1, 3 or 5 in a cluster) [default: 1]' -r
complete -c qspool -n "__fish_qspool_using_subcommand init" -s s -l spool -d 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand init" -l nats-creds -d 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand init" -l trust-spool -d 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root\'s own spools are always trusted'
complete -c qspool -n "__fish_qspool_using_subcommand init" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c qspool -n "__fish_qspool_using_subcommand push" -l delay -d 'Keep the messages invisible for this long, e.g. 90s, 1h' -r
complete -c qspool -n "__fish_qspool_using_subcommand push" -l key -d 'Push the message only if no message with this dedup key is ready, delayed or leased, or was acked within the spool\'s dedup window (init --dedup-window, 5m by default); otherwise print that message\'s id. 1 to 128 bytes; one message per push' -r
complete -c qspool -n "__fish_qspool_using_subcommand push" -l group -d 'Deliver the messages of group G one at a time, in push order: while one is out (ready, delayed or leased), the next waits. 1 to 128 bytes' -r
complete -c qspool -n "__fish_qspool_using_subcommand push" -s s -l spool -d 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand push" -l nats-creds -d 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand push" -s f -l file -d 'Each argument names a file; the file\'s contents is one message'
complete -c qspool -n "__fish_qspool_using_subcommand push" -l lines -d 'Each line of standard input is one message (empty lines skipped), pushed as one batch'
complete -c qspool -n "__fish_qspool_using_subcommand push" -s 0 -l null -d 'Like --lines, with NUL-separated input, as xargs -0 reads it'
complete -c qspool -n "__fish_qspool_using_subcommand push" -l no-sync -d 'Skip the fsyncs: faster, but a crash may lose messages whose ids were printed'
complete -c qspool -n "__fish_qspool_using_subcommand push" -l json -d 'Print one JSON object per message: id, pushed (false when --key found the key held, and id is the holder\'s), and key'
complete -c qspool -n "__fish_qspool_using_subcommand push" -l trust-spool -d 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root\'s own spools are always trusted'
complete -c qspool -n "__fish_qspool_using_subcommand push" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c qspool -n "__fish_qspool_using_subcommand pop" -l lease -d 'Lease length [default: the spool\'s, 30s unless set by init]' -r
complete -c qspool -n "__fish_qspool_using_subcommand pop" -l receipt-file -d 'Also write the receipt (one per line with -n) to FILE' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand pop" -s n -l max -d 'Lease up to N messages (needs --json)' -r
complete -c qspool -n "__fish_qspool_using_subcommand pop" -l wait -d 'Block until a message is visible: forever, or at most DUR (then exit 3). The value needs the `=`, as in --wait=30s' -r
complete -c qspool -n "__fish_qspool_using_subcommand pop" -s s -l spool -d 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand pop" -l nats-creds -d 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand pop" -l json -d 'Print one JSON object per message: id, receipt, attempt, enqueued_at, lease_expires_at, size, and body (UTF-8) or body_base64'
complete -c qspool -n "__fish_qspool_using_subcommand pop" -l ack -d 'Ack once the payload is written: at-most-once delivery'
complete -c qspool -n "__fish_qspool_using_subcommand pop" -l trust-spool -d 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root\'s own spools are always trusted'
complete -c qspool -n "__fish_qspool_using_subcommand pop" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c qspool -n "__fish_qspool_using_subcommand ack" -s s -l spool -d 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand ack" -l nats-creds -d 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand ack" -l trust-spool -d 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root\'s own spools are always trusted'
complete -c qspool -n "__fish_qspool_using_subcommand ack" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c qspool -n "__fish_qspool_using_subcommand requeue" -l delay -d 'Keep requeued messages invisible for this long' -r
complete -c qspool -n "__fish_qspool_using_subcommand requeue" -s s -l spool -d 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand requeue" -l nats-creds -d 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand requeue" -l expired -d 'Return every expired lease, print what moved, remove tmp/ leftovers older than 36h, and purge acked messages past the spool\'s retain-done time'
complete -c qspool -n "__fish_qspool_using_subcommand requeue" -l trust-spool -d 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root\'s own spools are always trusted'
complete -c qspool -n "__fish_qspool_using_subcommand requeue" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c qspool -n "__fish_qspool_using_subcommand extend" -l lease -d 'New lease length, counted from now [default: the spool\'s]' -r
complete -c qspool -n "__fish_qspool_using_subcommand extend" -s s -l spool -d 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand extend" -l nats-creds -d 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand extend" -l trust-spool -d 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root\'s own spools are always trusted'
complete -c qspool -n "__fish_qspool_using_subcommand extend" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c qspool -n "__fish_qspool_using_subcommand bury" -s s -l spool -d 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand bury" -l nats-creds -d 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand bury" -l trust-spool -d 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root\'s own spools are always trusted'
complete -c qspool -n "__fish_qspool_using_subcommand bury" -s h -l help -d 'Print help'
complete -c qspool -n "__fish_qspool_using_subcommand stats" -l output -d 'Write the metrics to FILE instead, atomically (through a temporary file beside it whose name does not end in .prom), mode 0644' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand stats" -l watch -d 'Look again every DUR (2s without a value; it needs the `=`) until interrupted: the table is redrawn on a terminal; JSON and metrics are printed (or written) anew each time' -r
complete -c qspool -n "__fish_qspool_using_subcommand stats" -s s -l spool -d 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand stats" -l nats-creds -d 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand stats" -l json -d 'Print one JSON object'
complete -c qspool -n "__fish_qspool_using_subcommand stats" -l prometheus -d 'Print node_exporter\'s textfile format: per state the messages, their bytes and the age of the oldest; and the foreign entries. Each series is labelled with the spool\'s path'
complete -c qspool -n "__fish_qspool_using_subcommand stats" -l trust-spool -d 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root\'s own spools are always trusted'
complete -c qspool -n "__fish_qspool_using_subcommand stats" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c qspool -n "__fish_qspool_using_subcommand list" -l limit -d 'Only the N oldest' -r
complete -c qspool -n "__fish_qspool_using_subcommand list" -s s -l spool -d 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand list" -l nats-creds -d 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand list" -l all -d 'Include done (acked) messages too'
complete -c qspool -n "__fish_qspool_using_subcommand list" -l json -d 'Print one JSON object per message: id, state, attempt, enqueued_at, visible_at, lease_expires_at or finished_at, state_since (where the name records it), size'
complete -c qspool -n "__fish_qspool_using_subcommand list" -l trust-spool -d 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root\'s own spools are always trusted'
complete -c qspool -n "__fish_qspool_using_subcommand list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c qspool -n "__fish_qspool_using_subcommand dlq-replay" -l limit -d 'Replay at most N messages' -r
complete -c qspool -n "__fish_qspool_using_subcommand dlq-replay" -s s -l spool -d 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand dlq-replay" -l nats-creds -d 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand dlq-replay" -l all -d 'Replay every dead message, oldest first'
complete -c qspool -n "__fish_qspool_using_subcommand dlq-replay" -l trust-spool -d 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root\'s own spools are always trusted'
complete -c qspool -n "__fish_qspool_using_subcommand dlq-replay" -s h -l help -d 'Print help'
complete -c qspool -n "__fish_qspool_using_subcommand replay" -l since -d 'Replay the messages acked within the last DUR' -r
complete -c qspool -n "__fish_qspool_using_subcommand replay" -l limit -d 'Replay at most N messages' -r
complete -c qspool -n "__fish_qspool_using_subcommand replay" -s s -l spool -d 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand replay" -l nats-creds -d 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand replay" -l done -d 'Replay acked messages (from done/)'
complete -c qspool -n "__fish_qspool_using_subcommand replay" -l all -d 'Replay every acked message still retained'
complete -c qspool -n "__fish_qspool_using_subcommand replay" -l trust-spool -d 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root\'s own spools are always trusted'
complete -c qspool -n "__fish_qspool_using_subcommand replay" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c qspool -n "__fish_qspool_using_subcommand pause" -s s -l spool -d 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand pause" -l nats-creds -d 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand pause" -l trust-spool -d 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root\'s own spools are always trusted'
complete -c qspool -n "__fish_qspool_using_subcommand pause" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c qspool -n "__fish_qspool_using_subcommand resume" -s s -l spool -d 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand resume" -l nats-creds -d 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand resume" -l trust-spool -d 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root\'s own spools are always trusted'
complete -c qspool -n "__fish_qspool_using_subcommand resume" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c qspool -n "__fish_qspool_using_subcommand purge" -l older-than -d 'Only messages that entered their state at least this long ago (for ready ones: became visible; delayed ones never qualify)' -r
complete -c qspool -n "__fish_qspool_using_subcommand purge" -s s -l spool -d 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand purge" -l nats-creds -d 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand purge" -l done -d 'Purge done/ (acked messages)'
complete -c qspool -n "__fish_qspool_using_subcommand purge" -l dead -d 'Purge dead/ (dead-lettered messages)'
complete -c qspool -n "__fish_qspool_using_subcommand purge" -l ready -d 'Purge new/: ready and delayed messages, never delivered or waiting for a retry'
complete -c qspool -n "__fish_qspool_using_subcommand purge" -l yes -d 'Confirm deleting ready or dead messages without naming them'
complete -c qspool -n "__fish_qspool_using_subcommand purge" -l trust-spool -d 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root\'s own spools are always trusted'
complete -c qspool -n "__fish_qspool_using_subcommand purge" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c qspool -n "__fish_qspool_using_subcommand work" -l lease -d 'Lease length; extended while CMD runs [default: the spool\'s, 30s unless set by init] (directories only)' -r
complete -c qspool -n "__fish_qspool_using_subcommand work" -l backoff -d 'Delay before the first retry of a failed message; it doubles with each attempt' -r
complete -c qspool -n "__fish_qspool_using_subcommand work" -l backoff-max -d 'Longest delay between retries' -r
complete -c qspool -n "__fish_qspool_using_subcommand work" -l grace -d 'How long CMDs may run on after SIGTERM before they are killed' -r
complete -c qspool -n "__fish_qspool_using_subcommand work" -s n -l max -d 'Run CMD at most N times (a message retried within the run counts again), then exit' -r
complete -c qspool -n "__fish_qspool_using_subcommand work" -l wait -d 'Keep waiting for messages until signalled, or until idle for DUR. The value needs the `=`, as in --wait=10m' -r
complete -c qspool -n "__fish_qspool_using_subcommand work" -l rate -d 'Start at most this many CMDs in this process: N/s, N/m, N/h or N/DUR. A spool-wide limit (init --rate) holds as well' -r
complete -c qspool -n "__fish_qspool_using_subcommand work" -l burst -d 'How many CMDs --rate lets start at once after a quiet spell [default: 1]' -r
complete -c qspool -n "__fish_qspool_using_subcommand work" -s j -l concurrency -d 'Run up to K CMDs at once; with 1, messages run one at a time in queue order' -r
complete -c qspool -n "__fish_qspool_using_subcommand work" -s s -l spool -d 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand work" -l nats-creds -d 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand work" -s q -l quiet -d 'No line per message that was acked, requeued or dead-lettered, and the summary only when something failed (lost leases, stops and errors are still reported)'
complete -c qspool -n "__fish_qspool_using_subcommand work" -l trust-spool -d 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root\'s own spools are always trusted'
complete -c qspool -n "__fish_qspool_using_subcommand work" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c qspool -n "__fish_qspool_using_subcommand relay" -l to -d 'The JetStream queue to forward to: nats://[USER:PASS@]HOST[:PORT]/NAME or tls://…' -r
complete -c qspool -n "__fish_qspool_using_subcommand relay" -l wait -d 'Keep relaying until signalled, or until idle for DUR. The value needs the `=`, as in --wait=10m' -r
complete -c qspool -n "__fish_qspool_using_subcommand relay" -s j -l concurrency -d 'Publishes in flight at once' -r
complete -c qspool -n "__fish_qspool_using_subcommand relay" -s s -l spool -d 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand relay" -l nats-creds -d 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand relay" -s q -l quiet -d 'Print nothing but errors and outages'
complete -c qspool -n "__fish_qspool_using_subcommand relay" -l trust-spool -d 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root\'s own spools are always trusted'
complete -c qspool -n "__fish_qspool_using_subcommand relay" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c qspool -n "__fish_qspool_using_subcommand show" -s s -l spool -d 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand show" -l nats-creds -d 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand show" -l json -d 'Print one JSON object: id, state, attempt, enqueued_at, the time of its state (visible_at, lease_expires_at or finished_at), size, and body (UTF-8) or body_base64'
complete -c qspool -n "__fish_qspool_using_subcommand show" -l trust-spool -d 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root\'s own spools are always trusted'
complete -c qspool -n "__fish_qspool_using_subcommand show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c qspool -n "__fish_qspool_using_subcommand fsck" -s s -l spool -d 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand fsck" -l nats-creds -d 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool' -r -F
complete -c qspool -n "__fish_qspool_using_subcommand fsck" -l repair -d 'Set aside foreign entries and duplicate copies in corrupt/, and fix modes'
complete -c qspool -n "__fish_qspool_using_subcommand fsck" -l json -d 'Print one JSON object with a findings array'
complete -c qspool -n "__fish_qspool_using_subcommand fsck" -l trust-spool -d 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root\'s own spools are always trusted'
complete -c qspool -n "__fish_qspool_using_subcommand fsck" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c qspool -n "__fish_qspool_using_subcommand help; and not __fish_seen_subcommand_from init push pop ack requeue extend bury stats list dlq-replay replay pause resume purge work relay show fsck help" -f -a "init" -d 'Create a spool, or change its stored defaults'
complete -c qspool -n "__fish_qspool_using_subcommand help; and not __fish_seen_subcommand_from init push pop ack requeue extend bury stats list dlq-replay replay pause resume purge work relay show fsck help" -f -a "push" -d 'Push messages: each TEXT is one message; with none, standard input is one message'
complete -c qspool -n "__fish_qspool_using_subcommand help; and not __fish_seen_subcommand_from init push pop ack requeue extend bury stats list dlq-replay replay pause resume purge work relay show fsck help" -f -a "pop" -d 'Lease the message that has been visible longest and print its payload'
complete -c qspool -n "__fish_qspool_using_subcommand help; and not __fish_seen_subcommand_from init push pop ack requeue extend bury stats list dlq-replay replay pause resume purge work relay show fsck help" -f -a "ack" -d 'Acknowledge leased messages: they are done and leave the queue'
complete -c qspool -n "__fish_qspool_using_subcommand help; and not __fish_seen_subcommand_from init push pop ack requeue extend bury stats list dlq-replay replay pause resume purge work relay show fsck help" -f -a "requeue" -d 'Give leases back early (a nack), or return every expired lease to the queue'
complete -c qspool -n "__fish_qspool_using_subcommand help; and not __fish_seen_subcommand_from init push pop ack requeue extend bury stats list dlq-replay replay pause resume purge work relay show fsck help" -f -a "extend" -d 'Extend (or shorten) a lease: it now expires DUR from now. Prints the new receipt'
complete -c qspool -n "__fish_qspool_using_subcommand help; and not __fish_seen_subcommand_from init push pop ack requeue extend bury stats list dlq-replay replay pause resume purge work relay show fsck help" -f -a "bury" -d 'Move leased messages straight to dead/, whatever attempts remain (a poison message)'
complete -c qspool -n "__fish_qspool_using_subcommand help; and not __fish_seen_subcommand_from init push pop ack requeue extend bury stats list dlq-replay replay pause resume purge work relay show fsck help" -f -a "stats" -d 'The shape of the queue: per state its messages, bytes and oldest, by age; foreign entries'
complete -c qspool -n "__fish_qspool_using_subcommand help; and not __fish_seen_subcommand_from init push pop ack requeue extend bury stats list dlq-replay replay pause resume purge work relay show fsck help" -f -a "list" -d 'List messages, oldest first (by first push, across states), without reading a payload'
complete -c qspool -n "__fish_qspool_using_subcommand help; and not __fish_seen_subcommand_from init push pop ack requeue extend bury stats list dlq-replay replay pause resume purge work relay show fsck help" -f -a "dlq-replay" -d 'Move dead messages back to the queue, attempts reset, ids unchanged. Prints the ids moved'
complete -c qspool -n "__fish_qspool_using_subcommand help; and not __fish_seen_subcommand_from init push pop ack requeue extend bury stats list dlq-replay replay pause resume purge work relay show fsck help" -f -a "replay" -d 'Move acked messages back to the queue, attempts reset, ids unchanged. Prints the ids moved'
complete -c qspool -n "__fish_qspool_using_subcommand help; and not __fish_seen_subcommand_from init push pop ack requeue extend bury stats list dlq-replay replay pause resume purge work relay show fsck help" -f -a "pause" -d 'Stop all consumption: pop exits 3 and says why, work holds off, waiting pops keep waiting'
complete -c qspool -n "__fish_qspool_using_subcommand help; and not __fish_seen_subcommand_from init push pop ack requeue extend bury stats list dlq-replay replay pause resume purge work relay show fsck help" -f -a "resume" -d 'Restart consumption after `qspool pause`, and wake every waiting pop and work at once'
complete -c qspool -n "__fish_qspool_using_subcommand help; and not __fish_seen_subcommand_from init push pop ack requeue extend bury stats list dlq-replay replay pause resume purge work relay show fsck help" -f -a "purge" -d 'Delete messages for good: acked (done/), dead-lettered (dead/) or waiting (new/). Prints the ids removed, one per line'
complete -c qspool -n "__fish_qspool_using_subcommand help; and not __fish_seen_subcommand_from init push pop ack requeue extend bury stats list dlq-replay replay pause resume purge work relay show fsck help" -f -a "work" -d 'Run CMD once per message, with the payload on its standard input; CMD\'s exit code decides'
complete -c qspool -n "__fish_qspool_using_subcommand help; and not __fish_seen_subcommand_from init push pop ack requeue extend bury stats list dlq-replay replay pause resume purge work relay show fsck help" -f -a "relay" -d 'Forward the local spool to a JetStream queue: the spool as a durable outbox'
complete -c qspool -n "__fish_qspool_using_subcommand help; and not __fish_seen_subcommand_from init push pop ack requeue extend bury stats list dlq-replay replay pause resume purge work relay show fsck help" -f -a "show" -d 'Print one message\'s payload, whatever its state, without leasing it or changing anything'
complete -c qspool -n "__fish_qspool_using_subcommand help; and not __fish_seen_subcommand_from init push pop ack requeue extend bury stats list dlq-replay replay pause resume purge work relay show fsck help" -f -a "fsck" -d 'Check a spool against its format, and with --repair, set aside what does not belong'
complete -c qspool -n "__fish_qspool_using_subcommand help; and not __fish_seen_subcommand_from init push pop ack requeue extend bury stats list dlq-replay replay pause resume purge work relay show fsck help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
