#!/bin/sh
# enqueue-files.sh: push every *.json file under a directory as one message each (the file's
# bytes are the payload), and remove each file once its message is durable.
#
# Usage: enqueue-files.sh DIR
#
#   QSPOOL_DIR   the spool (default: qspool's own default spool)
#   KEEP=1       push the files but leave them in place
#
# A file is removed only after `qspool push --file` has printed an id for it: push prints the
# ids in the order of its arguments, each once its message is written, fsynced and renamed
# into new/, so the first N files of a call whose output has N ids are safely queued. If push
# fails part-way (an unreadable file, a full disk), the files it had not queued stay where
# they are and are pushed by the next run; the script then exits non-zero. If the machine dies
# between a push and a removal, the next run pushes that file again: at-least-once, like every
# qspool delivery, so the consumers should be idempotent.
#
# Files still being written must not match: have producers write `NAME.json.tmp` and rename it
# to `NAME.json` when complete (rename is atomic), or run this from cron on files older than a
# minute by adding `-mmin +1` to the find below.
#
# Example: */1 * * * * QSPOOL_DIR=/var/spool/imports /usr/local/bin/enqueue-files.sh /srv/drop

set -u

if [ "$#" -ne 1 ] || [ ! -d "$1" ]; then
    echo "usage: enqueue-files.sh DIR" >&2
    exit 2
fi

if [ "${KEEP:-0}" = 1 ]; then
    find "$1" -type f -name '*.json' -print0 | xargs -0 -r qspool push --file >/dev/null
    exit
fi

# xargs runs this with as many file names as fit on one command line: push them in one call
# (one group commit), count the ids printed, and remove that many files from the front.
# shellcheck disable=SC2016 # $1, $@ and $ids are expanded by the inner sh, not here
push_then_remove='
    ids=$(qspool push --file "$@")
    status=$?
    pushed=$(printf "%s" "$ids" | grep -c .)
    for file do
        [ "$pushed" -gt 0 ] || break
        rm -f -- "$file" || status=1
        pushed=$((pushed - 1))
    done
    exit "$status"
'
find "$1" -type f -name '*.json' -print0 | xargs -0 -r sh -c "$push_then_remove" sh
