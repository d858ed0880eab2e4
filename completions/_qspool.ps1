
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'qspool' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'qspool'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'qspool' {
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--spool', '--spool', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--nats-creds', '--nats-creds', [CompletionResultType]::ParameterName, 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool')
            [CompletionResult]::new('--trust-spool', '--trust-spool', [CompletionResultType]::ParameterName, 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Create a spool, or change its stored defaults')
            [CompletionResult]::new('push', 'push', [CompletionResultType]::ParameterValue, 'Push messages: each TEXT is one message; with none, standard input is one message')
            [CompletionResult]::new('pop', 'pop', [CompletionResultType]::ParameterValue, 'Lease the message that has been visible longest and print its payload')
            [CompletionResult]::new('ack', 'ack', [CompletionResultType]::ParameterValue, 'Acknowledge leased messages: they are done and leave the queue')
            [CompletionResult]::new('requeue', 'requeue', [CompletionResultType]::ParameterValue, 'Give leases back early (a nack), or return every expired lease to the queue')
            [CompletionResult]::new('extend', 'extend', [CompletionResultType]::ParameterValue, 'Extend (or shorten) a lease: it now expires DUR from now. Prints the new receipt')
            [CompletionResult]::new('bury', 'bury', [CompletionResultType]::ParameterValue, 'Move leased messages straight to dead/, whatever attempts remain (a poison message)')
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'The shape of the queue: per state its messages, bytes and oldest, by age; foreign entries')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List messages, oldest first (by first push, across states), without reading a payload')
            [CompletionResult]::new('dlq-replay', 'dlq-replay', [CompletionResultType]::ParameterValue, 'Move dead messages back to the queue, attempts reset, ids unchanged. Prints the ids moved')
            [CompletionResult]::new('replay', 'replay', [CompletionResultType]::ParameterValue, 'Move acked messages back to the queue, attempts reset, ids unchanged. Prints the ids moved')
            [CompletionResult]::new('pause', 'pause', [CompletionResultType]::ParameterValue, 'Stop all consumption: pop exits 3 and says why, work holds off, waiting pops keep waiting')
            [CompletionResult]::new('resume', 'resume', [CompletionResultType]::ParameterValue, 'Restart consumption after `qspool pause`, and wake every waiting pop and work at once')
            [CompletionResult]::new('purge', 'purge', [CompletionResultType]::ParameterValue, 'Delete messages for good: acked (done/), dead-lettered (dead/) or waiting (new/). Prints the ids removed, one per line')
            [CompletionResult]::new('work', 'work', [CompletionResultType]::ParameterValue, 'Run CMD once per message, with the payload on its standard input; CMD''s exit code decides')
            [CompletionResult]::new('relay', 'relay', [CompletionResultType]::ParameterValue, 'Forward the local spool to a JetStream queue: the spool as a durable outbox')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print one message''s payload, whatever its state, without leasing it or changing anything')
            [CompletionResult]::new('fsck', 'fsck', [CompletionResultType]::ParameterValue, 'Check a spool against its format, and with --repair, set aside what does not belong')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'qspool;init' {
            [CompletionResult]::new('--max-attempts', '--max-attempts', [CompletionResultType]::ParameterName, 'Leases a message may have before it is dead-lettered (at least 1)')
            [CompletionResult]::new('--lease', '--lease', [CompletionResultType]::ParameterName, 'Default lease length, e.g. 30s, 5m, 1m30s')
            [CompletionResult]::new('--retain-done', '--retain-done', [CompletionResultType]::ParameterName, 'How long acked messages stay in done/ before `requeue --expired` (or `stats`) removes them [default: 1d]')
            [CompletionResult]::new('--rate', '--rate', [CompletionResultType]::ParameterName, 'Spool-wide limit on leases started, by every pop and work together: N/s, N/m, N/h or N/DUR (as in 5/10s); `off` removes it')
            [CompletionResult]::new('--burst', '--burst', [CompletionResultType]::ParameterName, 'How many leases the spool-wide limit allows at once after a quiet spell [default: 1]')
            [CompletionResult]::new('--dedup-window', '--dedup-window', [CompletionResultType]::ParameterName, 'How long an acked message keeps its `push --key` from being pushed again [default: 5m]')
            [CompletionResult]::new('--replicas', '--replicas', [CompletionResultType]::ParameterName, 'JetStream queues only: how many servers keep a copy of each stream (1, 3 or 5 in a cluster) [default: 1]')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--spool', '--spool', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--nats-creds', '--nats-creds', [CompletionResultType]::ParameterName, 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool')
            [CompletionResult]::new('--trust-spool', '--trust-spool', [CompletionResultType]::ParameterName, 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'qspool;push' {
            [CompletionResult]::new('--delay', '--delay', [CompletionResultType]::ParameterName, 'Keep the messages invisible for this long, e.g. 90s, 1h')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Push the message only if no message with this dedup key is ready, delayed or leased, or was acked within the spool''s dedup window (init --dedup-window, 5m by default); otherwise print that message''s id. 1 to 128 bytes; one message per push')
            [CompletionResult]::new('--group', '--group', [CompletionResultType]::ParameterName, 'Deliver the messages of group G one at a time, in push order: while one is out (ready, delayed or leased), the next waits. 1 to 128 bytes')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--spool', '--spool', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--nats-creds', '--nats-creds', [CompletionResultType]::ParameterName, 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Each argument names a file; the file''s contents is one message')
            [CompletionResult]::new('--file', '--file', [CompletionResultType]::ParameterName, 'Each argument names a file; the file''s contents is one message')
            [CompletionResult]::new('--lines', '--lines', [CompletionResultType]::ParameterName, 'Each line of standard input is one message (empty lines skipped), pushed as one batch')
            [CompletionResult]::new('-0', '-0', [CompletionResultType]::ParameterName, 'Like --lines, with NUL-separated input, as xargs -0 reads it')
            [CompletionResult]::new('--null', '--null', [CompletionResultType]::ParameterName, 'Like --lines, with NUL-separated input, as xargs -0 reads it')
            [CompletionResult]::new('--no-sync', '--no-sync', [CompletionResultType]::ParameterName, 'Skip the fsyncs: faster, but a crash may lose messages whose ids were printed')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object per message: id, pushed (false when --key found the key held, and id is the holder''s), and key')
            [CompletionResult]::new('--trust-spool', '--trust-spool', [CompletionResultType]::ParameterName, 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'qspool;pop' {
            [CompletionResult]::new('--lease', '--lease', [CompletionResultType]::ParameterName, 'Lease length [default: the spool''s, 30s unless set by init]')
            [CompletionResult]::new('--receipt-file', '--receipt-file', [CompletionResultType]::ParameterName, 'Also write the receipt (one per line with -n) to FILE')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Lease up to N messages (needs --json)')
            [CompletionResult]::new('--max', '--max', [CompletionResultType]::ParameterName, 'Lease up to N messages (needs --json)')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'Block until a message is visible: forever, or at most DUR (then exit 3). The value needs the `=`, as in --wait=30s')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--spool', '--spool', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--nats-creds', '--nats-creds', [CompletionResultType]::ParameterName, 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object per message: id, receipt, attempt, enqueued_at, lease_expires_at, size, and body (UTF-8) or body_base64')
            [CompletionResult]::new('--ack', '--ack', [CompletionResultType]::ParameterName, 'Ack once the payload is written: at-most-once delivery')
            [CompletionResult]::new('--trust-spool', '--trust-spool', [CompletionResultType]::ParameterName, 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'qspool;ack' {
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--spool', '--spool', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--nats-creds', '--nats-creds', [CompletionResultType]::ParameterName, 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool')
            [CompletionResult]::new('--trust-spool', '--trust-spool', [CompletionResultType]::ParameterName, 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'qspool;requeue' {
            [CompletionResult]::new('--delay', '--delay', [CompletionResultType]::ParameterName, 'Keep requeued messages invisible for this long')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--spool', '--spool', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--nats-creds', '--nats-creds', [CompletionResultType]::ParameterName, 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool')
            [CompletionResult]::new('--expired', '--expired', [CompletionResultType]::ParameterName, 'Return every expired lease, print what moved, remove tmp/ leftovers older than 36h, and purge acked messages past the spool''s retain-done time')
            [CompletionResult]::new('--trust-spool', '--trust-spool', [CompletionResultType]::ParameterName, 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'qspool;extend' {
            [CompletionResult]::new('--lease', '--lease', [CompletionResultType]::ParameterName, 'New lease length, counted from now [default: the spool''s]')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--spool', '--spool', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--nats-creds', '--nats-creds', [CompletionResultType]::ParameterName, 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool')
            [CompletionResult]::new('--trust-spool', '--trust-spool', [CompletionResultType]::ParameterName, 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'qspool;bury' {
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--spool', '--spool', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--nats-creds', '--nats-creds', [CompletionResultType]::ParameterName, 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool')
            [CompletionResult]::new('--trust-spool', '--trust-spool', [CompletionResultType]::ParameterName, 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'qspool;stats' {
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Write the metrics to FILE instead, atomically (through a temporary file beside it whose name does not end in .prom), mode 0644')
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'Look again every DUR (2s without a value; it needs the `=`) until interrupted: the table is redrawn on a terminal; JSON and metrics are printed (or written) anew each time')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--spool', '--spool', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--nats-creds', '--nats-creds', [CompletionResultType]::ParameterName, 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object')
            [CompletionResult]::new('--prometheus', '--prometheus', [CompletionResultType]::ParameterName, 'Print node_exporter''s textfile format: per state the messages, their bytes and the age of the oldest; and the foreign entries. Each series is labelled with the spool''s path')
            [CompletionResult]::new('--trust-spool', '--trust-spool', [CompletionResultType]::ParameterName, 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'qspool;list' {
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Only the N oldest')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--spool', '--spool', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--nats-creds', '--nats-creds', [CompletionResultType]::ParameterName, 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Include done (acked) messages too')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object per message: id, state, attempt, enqueued_at, visible_at, lease_expires_at or finished_at, state_since (where the name records it), size')
            [CompletionResult]::new('--trust-spool', '--trust-spool', [CompletionResultType]::ParameterName, 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'qspool;dlq-replay' {
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Replay at most N messages')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--spool', '--spool', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--nats-creds', '--nats-creds', [CompletionResultType]::ParameterName, 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Replay every dead message, oldest first')
            [CompletionResult]::new('--trust-spool', '--trust-spool', [CompletionResultType]::ParameterName, 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'qspool;replay' {
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'Replay the messages acked within the last DUR')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Replay at most N messages')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--spool', '--spool', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--nats-creds', '--nats-creds', [CompletionResultType]::ParameterName, 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool')
            [CompletionResult]::new('--done', '--done', [CompletionResultType]::ParameterName, 'Replay acked messages (from done/)')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Replay every acked message still retained')
            [CompletionResult]::new('--trust-spool', '--trust-spool', [CompletionResultType]::ParameterName, 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'qspool;pause' {
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--spool', '--spool', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--nats-creds', '--nats-creds', [CompletionResultType]::ParameterName, 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool')
            [CompletionResult]::new('--trust-spool', '--trust-spool', [CompletionResultType]::ParameterName, 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'qspool;resume' {
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--spool', '--spool', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--nats-creds', '--nats-creds', [CompletionResultType]::ParameterName, 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool')
            [CompletionResult]::new('--trust-spool', '--trust-spool', [CompletionResultType]::ParameterName, 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'qspool;purge' {
            [CompletionResult]::new('--older-than', '--older-than', [CompletionResultType]::ParameterName, 'Only messages that entered their state at least this long ago (for ready ones: became visible; delayed ones never qualify)')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--spool', '--spool', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--nats-creds', '--nats-creds', [CompletionResultType]::ParameterName, 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool')
            [CompletionResult]::new('--done', '--done', [CompletionResultType]::ParameterName, 'Purge done/ (acked messages)')
            [CompletionResult]::new('--dead', '--dead', [CompletionResultType]::ParameterName, 'Purge dead/ (dead-lettered messages)')
            [CompletionResult]::new('--ready', '--ready', [CompletionResultType]::ParameterName, 'Purge new/: ready and delayed messages, never delivered or waiting for a retry')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Confirm deleting ready or dead messages without naming them')
            [CompletionResult]::new('--trust-spool', '--trust-spool', [CompletionResultType]::ParameterName, 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'qspool;work' {
            [CompletionResult]::new('--lease', '--lease', [CompletionResultType]::ParameterName, 'Lease length; extended while CMD runs [default: the spool''s, 30s unless set by init] (directories only)')
            [CompletionResult]::new('--backoff', '--backoff', [CompletionResultType]::ParameterName, 'Delay before the first retry of a failed message; it doubles with each attempt')
            [CompletionResult]::new('--backoff-max', '--backoff-max', [CompletionResultType]::ParameterName, 'Longest delay between retries')
            [CompletionResult]::new('--grace', '--grace', [CompletionResultType]::ParameterName, 'How long CMDs may run on after SIGTERM before they are killed')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Run CMD at most N times (a message retried within the run counts again), then exit')
            [CompletionResult]::new('--max', '--max', [CompletionResultType]::ParameterName, 'Run CMD at most N times (a message retried within the run counts again), then exit')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'Keep waiting for messages until signalled, or until idle for DUR. The value needs the `=`, as in --wait=10m')
            [CompletionResult]::new('--rate', '--rate', [CompletionResultType]::ParameterName, 'Start at most this many CMDs in this process: N/s, N/m, N/h or N/DUR. A spool-wide limit (init --rate) holds as well')
            [CompletionResult]::new('--burst', '--burst', [CompletionResultType]::ParameterName, 'How many CMDs --rate lets start at once after a quiet spell [default: 1]')
            [CompletionResult]::new('-j', '-j', [CompletionResultType]::ParameterName, 'Run up to K CMDs at once; with 1, messages run one at a time in queue order')
            [CompletionResult]::new('--concurrency', '--concurrency', [CompletionResultType]::ParameterName, 'Run up to K CMDs at once; with 1, messages run one at a time in queue order')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--spool', '--spool', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--nats-creds', '--nats-creds', [CompletionResultType]::ParameterName, 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'No line per message that was acked, requeued or dead-lettered, and the summary only when something failed (lost leases, stops and errors are still reported)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'No line per message that was acked, requeued or dead-lettered, and the summary only when something failed (lost leases, stops and errors are still reported)')
            [CompletionResult]::new('--trust-spool', '--trust-spool', [CompletionResultType]::ParameterName, 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'qspool;relay' {
            [CompletionResult]::new('--to', '--to', [CompletionResultType]::ParameterName, 'The JetStream queue to forward to: nats://[USER:PASS@]HOST[:PORT]/NAME or tls://…')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'Keep relaying until signalled, or until idle for DUR. The value needs the `=`, as in --wait=10m')
            [CompletionResult]::new('-j', '-j', [CompletionResultType]::ParameterName, 'Publishes in flight at once')
            [CompletionResult]::new('--concurrency', '--concurrency', [CompletionResultType]::ParameterName, 'Publishes in flight at once')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--spool', '--spool', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--nats-creds', '--nats-creds', [CompletionResultType]::ParameterName, 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing but errors and outages')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing but errors and outages')
            [CompletionResult]::new('--trust-spool', '--trust-spool', [CompletionResultType]::ParameterName, 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'qspool;show' {
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--spool', '--spool', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--nats-creds', '--nats-creds', [CompletionResultType]::ParameterName, 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object: id, state, attempt, enqueued_at, the time of its state (visible_at, lease_expires_at or finished_at), size, and body (UTF-8) or body_base64')
            [CompletionResult]::new('--trust-spool', '--trust-spool', [CompletionResultType]::ParameterName, 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'qspool;fsck' {
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--spool', '--spool', [CompletionResultType]::ParameterName, 'The spool directory, or a JetStream queue as nats://[USER:PASS@]HOST[:PORT]/NAME (tls:// for TLS) [default: $QSPOOL_DIR, else ${XDG_STATE_HOME:-$HOME/.local/state}/qspool/default]. Any other URL scheme is refused; a directory named like one is written ./x:')
            [CompletionResult]::new('--nats-creds', '--nats-creds', [CompletionResultType]::ParameterName, 'NATS credentials file (a JWT and its nkey seed) for a nats:// spool')
            [CompletionResult]::new('--repair', '--repair', [CompletionResultType]::ParameterName, 'Set aside foreign entries and duplicate copies in corrupt/, and fix modes')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object with a findings array')
            [CompletionResult]::new('--trust-spool', '--trust-spool', [CompletionResultType]::ParameterName, 'Use the spool even if another user owns it or others may write to it (refused otherwise: they could change it under you). Root''s own spools are always trusted')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'qspool;help' {
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Create a spool, or change its stored defaults')
            [CompletionResult]::new('push', 'push', [CompletionResultType]::ParameterValue, 'Push messages: each TEXT is one message; with none, standard input is one message')
            [CompletionResult]::new('pop', 'pop', [CompletionResultType]::ParameterValue, 'Lease the message that has been visible longest and print its payload')
            [CompletionResult]::new('ack', 'ack', [CompletionResultType]::ParameterValue, 'Acknowledge leased messages: they are done and leave the queue')
            [CompletionResult]::new('requeue', 'requeue', [CompletionResultType]::ParameterValue, 'Give leases back early (a nack), or return every expired lease to the queue')
            [CompletionResult]::new('extend', 'extend', [CompletionResultType]::ParameterValue, 'Extend (or shorten) a lease: it now expires DUR from now. Prints the new receipt')
            [CompletionResult]::new('bury', 'bury', [CompletionResultType]::ParameterValue, 'Move leased messages straight to dead/, whatever attempts remain (a poison message)')
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'The shape of the queue: per state its messages, bytes and oldest, by age; foreign entries')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List messages, oldest first (by first push, across states), without reading a payload')
            [CompletionResult]::new('dlq-replay', 'dlq-replay', [CompletionResultType]::ParameterValue, 'Move dead messages back to the queue, attempts reset, ids unchanged. Prints the ids moved')
            [CompletionResult]::new('replay', 'replay', [CompletionResultType]::ParameterValue, 'Move acked messages back to the queue, attempts reset, ids unchanged. Prints the ids moved')
            [CompletionResult]::new('pause', 'pause', [CompletionResultType]::ParameterValue, 'Stop all consumption: pop exits 3 and says why, work holds off, waiting pops keep waiting')
            [CompletionResult]::new('resume', 'resume', [CompletionResultType]::ParameterValue, 'Restart consumption after `qspool pause`, and wake every waiting pop and work at once')
            [CompletionResult]::new('purge', 'purge', [CompletionResultType]::ParameterValue, 'Delete messages for good: acked (done/), dead-lettered (dead/) or waiting (new/). Prints the ids removed, one per line')
            [CompletionResult]::new('work', 'work', [CompletionResultType]::ParameterValue, 'Run CMD once per message, with the payload on its standard input; CMD''s exit code decides')
            [CompletionResult]::new('relay', 'relay', [CompletionResultType]::ParameterValue, 'Forward the local spool to a JetStream queue: the spool as a durable outbox')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print one message''s payload, whatever its state, without leasing it or changing anything')
            [CompletionResult]::new('fsck', 'fsck', [CompletionResultType]::ParameterValue, 'Check a spool against its format, and with --repair, set aside what does not belong')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'qspool;help;init' {
            break
        }
        'qspool;help;push' {
            break
        }
        'qspool;help;pop' {
            break
        }
        'qspool;help;ack' {
            break
        }
        'qspool;help;requeue' {
            break
        }
        'qspool;help;extend' {
            break
        }
        'qspool;help;bury' {
            break
        }
        'qspool;help;stats' {
            break
        }
        'qspool;help;list' {
            break
        }
        'qspool;help;dlq-replay' {
            break
        }
        'qspool;help;replay' {
            break
        }
        'qspool;help;pause' {
            break
        }
        'qspool;help;resume' {
            break
        }
        'qspool;help;purge' {
            break
        }
        'qspool;help;work' {
            break
        }
        'qspool;help;relay' {
            break
        }
        'qspool;help;show' {
            break
        }
        'qspool;help;fsck' {
            break
        }
        'qspool;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
