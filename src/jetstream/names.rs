//! The JetStream mapping's names and texts: streams, subjects, consumer, bucket, headers, the
//! receipt grammar and the lease fence's record. Pure, so the mapping is tested without a server;
//! `docs/JETSTREAM.md` is its normative description.

use crate::spool::name::{Id, NameError};
use std::fmt;

/// The durable pull consumer every qspool process shares.
pub const CONSUMER: &str = "qspool";
/// Set by push to the message's qspool id: the server drops a second copy inside the stream's
/// duplicate window, which is what makes a relay's retried publish harmless.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// The message's qspool id, kept when `Nats-Msg-Id` must differ (a replay).
pub const H_ID: &str = "Qspool-Id";
/// Microseconds since the epoch of the first push (kept by relay and replay).
pub const H_ENQUEUED: &str = "Qspool-Enqueued-At";
/// Attempts the message had before it reached this stream (relay, dead letters).
pub const H_ATTEMPT: &str = "Qspool-Attempt";
/// Dead letters: when (ms) and why (`max-attempts`, `buried`).
pub const H_DEAD_AT: &str = "Qspool-Dead-At";
pub const H_REASON: &str = "Qspool-Reason";

/// The names of one queue's server-side objects. `queue` is already checked
/// (`address::check_queue_name`): `[A-Za-z0-9_-]{1,64}`.
#[derive(Debug, Clone)]
pub struct Names {
    pub queue: String,
    /// The work-queue stream holding ready and leased messages.
    pub stream: String,
    pub subject: String,
    /// The limits stream holding dead letters.
    pub dead_stream: String,
    pub dead_subject: String,
    /// The key-value bucket of lease fences (and nothing else).
    pub bucket: String,
}

impl Names {
    pub fn of(queue: &str) -> Names {
        // `QSPOOL_` and `QSPOOL-` never share a prefix, so no queue's name can make another
        // queue's dead-letter stream or bucket name.
        Names {
            queue: queue.to_owned(),
            stream: format!("QSPOOL_{queue}"),
            subject: format!("qspool.{queue}"),
            dead_stream: format!("QSPOOL-DEAD_{queue}"),
            dead_subject: format!("qspool.{queue}.dead"),
            bucket: format!("QSPOOL-LEASES_{queue}"),
        }
    }
}

/// What a JetStream pop hands out: the message's id, its stream sequence, and the revision of
/// its fence entry, `ID,s<SEQ>,r<REV>`. Only the holder of the fence's current revision may
/// settle the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub id: Id,
    pub seq: u64,
    pub rev: u64,
}

impl fmt::Display for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},s{},r{}", self.id, self.seq, self.rev)
    }
}

impl Receipt {
    pub fn parse(s: &str) -> Result<Receipt, NameError> {
        let mut parts = s.rsplitn(3, ',');
        let (Some(rev), Some(seq), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NameError(
                "a JetStream receipt is ID,sSEQ,rREV (a directory's receipt is not one)",
            ));
        };
        let number = |t: Option<&str>| {
            t.filter(|d| !d.is_empty() && d.len() <= 20 && d.bytes().all(|b| b.is_ascii_digit()))
                .filter(|d| d.len() == 1 || !d.starts_with('0'))
                .and_then(|d| d.parse::<u64>().ok())
                .filter(|&n| n > 0)
        };
        let (Some(seq), Some(rev)) = (number(seq.strip_prefix('s')), number(rev.strip_prefix('r')))
        else {
            return Err(NameError(
                "a JetStream receipt ends in ,sSEQ,rREV with positive decimal numbers",
            ));
        };
        Ok(Receipt {
            id: Id::parse(id)?,
            seq,
            rev,
        })
    }
}

/// One lease's fence, the value of key `SEQ` in the bucket: which message, which delivery holds it,
/// until when (by the holder's clock, never later than the server's ack deadline), and the
/// reply subject its ack goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The message's id: a fence left from a stream that was deleted and made again (whose
    /// sequences start over) is told apart by it, and so is a receipt of another queue.
    pub id: Id,
    pub delivered: u64,
    pub expires_ms: u64,
    pub reply: String,
}

const FENCE_MAGIC: &str = "qspool-lease 1";

impl Fence {
    pub fn encode(&self) -> String {
        format!(
            "{FENCE_MAGIC} {} {} {} {}",
            self.id, self.delivered, self.expires_ms, self.reply
        )
    }

    /// `None` for anything but a record `encode` made: a foreign or torn value fences nothing,
    /// and is replaced by the next delivery's.
    pub fn decode(v: &[u8]) -> Option<Fence> {
        let s = std::str::from_utf8(v).ok()?;
        let rest = s.strip_prefix(FENCE_MAGIC)?.strip_prefix(' ')?;
        let mut f = rest.splitn(4, ' ');
        let id = Id::parse(f.next()?).ok()?;
        let delivered = f.next()?.parse().ok()?;
        let expires_ms = f.next()?.parse().ok()?;
        let reply = f.next()?;
        if reply.is_empty() || reply.contains(char::is_whitespace) {
            return None;
        }
        Some(Fence {
            id,
            delivered,
            expires_ms,
            reply: reply.to_owned(),
        })
    }
}

/// The id of a message that carries none of qspool's (another client pushed it): made from its
/// stream time and sequence, so that it is stable and unique within the stream.
pub fn foreign_id(time_us: u64, seq: u64) -> Id {
    Id::from_parts(
        time_us.min(crate::spool::name::MAX_US),
        0,
        (seq >> 32) as u32,
        seq as u32,
        "nats",
    )
}

/// The settings qspool keeps in the consumer's description, beside what JetStream itself
/// enforces (the ack wait is the lease).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub max_attempts: u32,
}

const SETTINGS_PREFIX: &str = "qspool queue; max-attempts ";

impl Settings {
    pub fn describe(&self) -> String {
        format!("{SETTINGS_PREFIX}{}", self.max_attempts)
    }

    pub fn parse(description: Option<&str>) -> Option<Settings> {
        let n = description?.strip_prefix(SETTINGS_PREFIX)?.parse().ok()?;
        (n >= 1).then_some(Settings { max_attempts: n })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "1733500000000000.42.0000002a.deadbeef.host-1";

    #[test]
    fn receipts_round_trip_and_refuse_anything_else() {
        let r = Receipt {
            id: Id::parse(ID).unwrap(),
            seq: 17,
            rev: 9_000_000_000,
        };
        let text = r.to_string();
        assert_eq!(text, format!("{ID},s17,r9000000000"));
        assert_eq!(Receipt::parse(&text).unwrap(), r);
        for bad in [
            "",
            ID,
            &format!("{ID},s17"),
            &format!("{ID},s0,r1"),
            &format!("{ID},s017,r1"),
            &format!("{ID},s1,r"),
            &format!("{ID},s1,r1x"),
            &format!("{ID},x1,r1"),
            &format!("{ID},s99999999999999999999999,r1"),
            "../../etc,s1,r1",
            &format!("{ID},a1,l1,s1,r1"),
        ] {
            assert!(Receipt::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fences_round_trip_and_torn_ones_fence_nothing() {
        let f = Fence {
            id: Id::parse(ID).unwrap(),
            delivered: 3,
            expires_ms: 1_733_500_000_123,
            reply: "$JS.ACK.QSPOOL_q.qspool.3.17.20.1733500000000000000.0".into(),
        };
        let text = f.encode();
        assert_eq!(Fence::decode(text.as_bytes()).as_ref(), Some(&f));
        // A value is one JetStream message, stored whole or not at all; still, no prefix of a
        // record reads back as that record.
        for cut in 0..text.len() {
            assert_ne!(
                Fence::decode(&text.as_bytes()[..cut]).as_ref(),
                Some(&f),
                "{cut}"
            );
        }
        assert_eq!(
            Fence::decode(format!("qspool-lease 2 {ID} 1 2 x").as_bytes()),
            None
        );
        assert_eq!(
            Fence::decode(format!("qspool-lease 1 {ID} 1 2 a b").as_bytes()),
            None
        );
        assert_eq!(Fence::decode(b"qspool-lease 1 nope 1 2 x"), None);
    }

    #[test]
    fn names_never_collide_across_queues() {
        let a = Names::of("a_DEAD");
        let b = Names::of("a");
        let all_a = [&a.stream, &a.dead_stream, &a.bucket];
        for n in [&b.stream, &b.dead_stream, &b.bucket] {
            assert!(!all_a.contains(&n), "{n}");
        }
        assert_eq!(b.subject, "qspool.a");
        assert_eq!(b.dead_subject, "qspool.a.dead");
    }

    #[test]
    fn foreign_ids_are_valid_and_differ_by_sequence() {
        let a = foreign_id(1_733_500_000_000_000, 1);
        let b = foreign_id(1_733_500_000_000_000, 1 << 40);
        assert_ne!(a, b);
        assert!(Id::parse(a.as_str()).is_ok() && Id::parse(b.as_str()).is_ok());
    }

    #[test]
    fn settings_live_in_the_description() {
        let s = Settings { max_attempts: 7 };
        assert_eq!(Settings::parse(Some(&s.describe())), Some(s));
        assert_eq!(Settings::parse(Some("qspool queue; max-attempts 0")), None);
        assert_eq!(Settings::parse(None), None);
    }
}
