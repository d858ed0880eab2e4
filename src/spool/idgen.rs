//! Makes message ids and lease tokens: unique across processes and hosts without any lock.

use super::name::{Id, host_tag};
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// One per process. The counter and the non-decreasing clock keep one process's ids in the order
/// they were made, even within one microsecond or across a small backwards clock step.
pub struct IdGen {
    pid: u32,
    host: String,
    counter: u32,
    last_us: u64,
}

impl Default for IdGen {
    fn default() -> IdGen {
        IdGen::new()
    }
}

impl IdGen {
    pub fn new() -> IdGen {
        IdGen {
            pid: std::process::id(),
            host: host_tag(&crate::os::hostname()),
            counter: 0,
            last_us: 0,
        }
    }

    pub fn next(&mut self, now_us: u64) -> Id {
        self.last_us = self.last_us.max(now_us);
        let id = Id::from_parts(
            self.last_us,
            self.pid,
            self.counter,
            random_u64() as u32,
            &self.host,
        );
        self.counter = self.counter.wrapping_add(1);
        id
    }
}

/// Unpredictable enough to tell two leases or two processes apart; not a secret.
/// std seeds each `RandomState` from the OS once per thread and perturbs it on every call.
pub fn random_u64() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    // Each RandomState is seeded from the OS once per thread and differs on every call, and
    // two processes never share a seed: no process id is needed (and none is asked for).
    RandomState::new().hash_one(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_one_process_are_strictly_increasing_even_when_the_clock_steps_back() {
        let mut g = IdGen::new();
        let a = g.next(2_000_000_000_000_000);
        let b = g.next(2_000_000_000_000_000);
        let c = g.next(1_999_999_999_999_999);
        let d = g.next(2_000_000_000_000_001);
        assert!(a < b && b < c && c < d, "{a} {b} {c} {d}");
        for id in [a, b, c, d] {
            assert_eq!(Id::parse(id.as_str()).unwrap(), id);
        }
    }

    #[test]
    fn tokens_differ() {
        let xs: std::collections::HashSet<u64> = (0..1000).map(|_| random_u64()).collect();
        assert_eq!(xs.len(), 1000);
    }
}
