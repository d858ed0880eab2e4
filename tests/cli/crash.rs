//! Crashes and contention: many consumers, SIGKILLed holders, a kill at every syscall, clock
//! jumps, fencing of stale receipts and broken pipelines, each judged by the history checker.
