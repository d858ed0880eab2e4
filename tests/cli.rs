//! The one integration-test binary: every test drives the real `qspool` executable.

#[path = "cli/checker.rs"]
mod checker;
#[path = "cli/harness.rs"]
mod harness;
#[path = "cli/nats_server.rs"]
mod nats_server;

#[path = "cli/ack.rs"]
mod ack;
#[path = "cli/adversary.rs"]
mod adversary;
#[path = "cli/concurrency.rs"]
mod concurrency;
#[path = "cli/crash.rs"]
mod crash;
#[path = "cli/faults.rs"]
mod faults;
#[path = "cli/fsck.rs"]
mod fsck;
#[path = "cli/generated.rs"]
mod generated;
#[path = "cli/groups.rs"]
mod groups;
#[path = "cli/hostile.rs"]
mod hostile;
#[path = "cli/init.rs"]
mod init;
#[path = "cli/jetstream.rs"]
mod jetstream;
#[path = "cli/jetstream_work.rs"]
mod jetstream_work;
#[path = "cli/keys.rs"]
mod keys;
#[path = "cli/leased_tree.rs"]
mod leased_tree;
#[path = "cli/pause.rs"]
mod pause;
#[path = "cli/pop.rs"]
mod pop;
#[path = "cli/prometheus.rs"]
mod prometheus;
#[path = "cli/purge.rs"]
mod purge;
#[path = "cli/push.rs"]
mod push;
#[path = "cli/rate.rs"]
mod rate;
#[path = "cli/recipes.rs"]
mod recipes;
#[path = "cli/regression.rs"]
mod regression;
#[path = "cli/relay.rs"]
mod relay;
#[path = "cli/replay.rs"]
mod replay;
#[path = "cli/requeue.rs"]
mod requeue;
#[path = "cli/retention.rs"]
mod retention;
#[path = "cli/show.rs"]
mod show;
#[path = "cli/stats.rs"]
mod stats;
#[path = "cli/wait.rs"]
mod wait;
#[path = "cli/watchdog.rs"]
mod watchdog;
#[path = "cli/work.rs"]
mod work;
