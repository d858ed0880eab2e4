//! Lease and visibility rules as pure functions of `now`, so that tests never sleep.

use super::name::MAX_MS;

/// Where a message goes when a lease ends without an ack (requeue, expiry, a failed write).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// Back to `new/`, visible at the given millisecond.
    Requeue { visible_ms: u64 },
    /// To `dead/`: that was its last allowed attempt.
    DeadLetter,
}

/// What happens to a message whose lease number `attempt` ends unacked.
pub fn on_release(attempt: u32, max_attempts: u32, now_ms: u64, delay_ms: u64) -> Release {
    if attempt >= max_attempts {
        Release::DeadLetter
    } else {
        Release::Requeue {
            visible_ms: deadline(now_ms, delay_ms),
        }
    }
}

/// Whether a ready message may still be leased: it has had fewer leases than allowed.
/// A message that has not (lowered `max_attempts`) is dead-lettered instead of delivered.
pub fn may_lease(attempts_so_far: u32, max_attempts: u32) -> bool {
    attempts_so_far < max_attempts
}

/// The instant `delay_ms` after `now_ms`, held inside what a name can store.
pub fn deadline(now_ms: u64, delay_ms: u64) -> u64 {
    now_ms.saturating_add(delay_ms).min(MAX_MS)
}

/// A lease is expired from its expiry millisecond on.
pub fn is_expired(expires_ms: u64, now_ms: u64) -> bool {
    now_ms >= expires_ms
}

/// A ready message is visible from its visible-at millisecond on.
pub fn is_visible(visible_ms: u64, now_ms: u64) -> bool {
    visible_ms <= now_ms
}

/// The delay before a failed message is visible again, after its attempt number `attempt`
/// (1 for the first) failed: `base` × 2^(attempt−1), at most `cap`.
pub fn backoff(attempt: u32, base_ms: u64, cap_ms: u64) -> u64 {
    let doublings = attempt.saturating_sub(1);
    let factor = 1u64.checked_shl(doublings).unwrap_or(u64::MAX);
    base_ms.saturating_mul(factor).min(cap_ms)
}

/// How long after a lease is taken or extended it is extended again: a third of its length,
/// so that two heartbeats can be late before it expires.
pub fn heartbeat(lease_ms: u64) -> u64 {
    (lease_ms / 3).max(1)
}

/// The earlier of two optional instants (or the shorter of two optional waits); `None` is no
/// limit, so it loses to any value.
pub fn earliest<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_attempt_goes_to_dead() {
        assert_eq!(on_release(5, 5, 100, 0), Release::DeadLetter);
        assert_eq!(on_release(6, 5, 100, 0), Release::DeadLetter);
        assert_eq!(
            on_release(4, 5, 100, 0),
            Release::Requeue { visible_ms: 100 }
        );
        assert_eq!(
            on_release(1, 5, 100, 250),
            Release::Requeue { visible_ms: 350 }
        );
    }

    #[test]
    fn leasing_stops_at_max_attempts() {
        assert!(may_lease(0, 1));
        assert!(!may_lease(1, 1));
        assert!(may_lease(4, 5));
        assert!(!may_lease(7, 5));
    }

    #[test]
    fn expiry_and_visibility_boundaries() {
        assert!(!is_expired(1000, 999));
        assert!(is_expired(1000, 1000));
        assert!(is_visible(1000, 1000));
        assert!(!is_visible(1001, 1000));
    }

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap() {
        let delays: Vec<u64> = (1..=10).map(|n| backoff(n, 1_000, 300_000)).collect();
        assert_eq!(
            delays,
            [
                1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000
            ]
        );
        assert_eq!(backoff(0, 1_000, 300_000), 1_000);
        assert_eq!(backoff(64, 1_000, 300_000), 300_000);
        assert_eq!(backoff(u32::MAX, u64::MAX, u64::MAX), u64::MAX);
        assert_eq!(backoff(3, 0, 300_000), 0);
        assert_eq!(backoff(1, 10_000, 5_000), 5_000);
    }

    #[test]
    fn heartbeats_come_three_times_a_lease() {
        assert_eq!(heartbeat(30_000), 10_000);
        assert_eq!(heartbeat(1), 1);
        assert_eq!(heartbeat(2), 1);
    }

    #[test]
    fn instants_saturate_at_the_grammar_limit() {
        assert_eq!(deadline(MAX_MS - 1, 10), MAX_MS);
        assert_eq!(deadline(u64::MAX, u64::MAX), MAX_MS);
    }
}
