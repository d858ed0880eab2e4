//! The history checker: every adversarial test records what it pushed, delivered and acked, and
//! this module decides whether the run lost, invented or duplicated a message.
