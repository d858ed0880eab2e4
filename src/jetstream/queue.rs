//! The spool API on JetStream: one queue's stream, consumer, dead-letter stream and lease fences,
//! and every state change qspool makes to them. Commands call this; nothing else talks to the
//! server.

use super::names::{self, Fence, Names, Receipt, Settings};
use crate::address::NatsUrl;
use crate::cmd::stats::Remote;
use crate::exit::{not_found, usage};
use crate::spool::name::Id;
use anyhow::{Context as _, Result, anyhow, bail};
use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::message::{AckKind, Acker, StreamMessage};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self as js, kv};
use bytes::Bytes;
use futures_util::StreamExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long a one-shot command waits for the server before it says it cannot reach it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A held request answered later than this after it was asked: its message's lease is
/// restarted on arrival, since the server's timer started when it sent the message, which this
/// process cannot see.
const ARRIVAL_MARGIN_MS: u64 = 100;
/// How long a pull request may take beyond its wait before it counts as lost.
const FETCH_BOUND: Duration = Duration::from_secs(5);
/// How long the last flush before an exit may take: a server gone mid-command must not hang it.
const FLUSH_BOUND: Duration = Duration::from_secs(5);

/// The queue's stream, consumer or bucket is not on the server.
#[derive(Debug)]
pub struct Missing(String);

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Missing {}

/// How to reach the server, beside the URL.
#[derive(Debug, Clone, Default)]
pub struct Connect {
    /// `--nats-creds` or `$NATS_CREDS`.
    pub creds: Option<PathBuf>,
}

/// The reconnections of one client, and a bell rung at each.
#[derive(Default)]
pub struct Reconnects {
    pub count: AtomicU64,
    pub rung: tokio::sync::Notify,
}

/// One connection to one queue.
pub struct Queue {
    pub url: NatsUrl,
    pub names: Names,
    pub js: js::Context,
    client: async_nats::Client,
    /// Counts the connections made after the first: a pull request held across a reconnect
    /// may be gone on the server (a restart), and is asked again.
    pub reconnects: Arc<Reconnects>,
    /// The consumer, its settings and the fence bucket, looked up once per process
    /// (`open_consumer`) for the commands that lease and settle.
    held: Option<(PullConsumer, QueueSettings, kv::Store)>,
}

/// A message held by this process: everything `pop` shows, and the receipt that settles it.
#[derive(Debug)]
pub struct Held {
    pub receipt: Receipt,
    pub attempt: u64,
    pub enqueued_us: u64,
    pub expires_ms: u64,
    pub payload: Bytes,
}

/// The queue's settings, as `init` sets them and the server keeps them.
#[derive(Debug, Clone, Copy)]
pub struct QueueSettings {
    pub max_attempts: u32,
    pub lease_ms: u64,
    pub dedup_window_ms: u64,
    pub replicas: usize,
}

impl QueueSettings {
    pub fn describe(&self) -> String {
        format!(
            "max-attempts {}, lease {}, dedup-window {}, replicas {}",
            self.max_attempts,
            crate::duration::format_ms(self.lease_ms),
            crate::duration::format_ms(self.dedup_window_ms),
            self.replicas
        )
    }
}

/// A dead letter, as `list`, `show` and `dlq-replay` see it.
#[derive(Debug)]
pub struct Dead {
    pub seq: u64,
    pub id: Id,
    pub attempt: u64,
    pub enqueued_us: u64,
    pub dead_ms: u64,
    pub payload: Bytes,
}

/// A message of the live stream, as `list` and `show` see it, with its fence if it has one.
#[derive(Debug)]
pub struct Live {
    pub id: Id,
    pub enqueued_us: u64,
    /// Stream time, in milliseconds: when it was pushed (or replayed).
    pub stored_ms: u64,
    pub payload: Bytes,
    pub fence: Option<Fence>,
}

pub fn now_ms() -> u64 {
    crate::spool::now_ms()
}

/// Microseconds since the epoch of a server timestamp.
fn time_us(t: &async_nats::datetime::DateTime) -> u64 {
    u64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(0)
}

fn header<'h>(h: Option<&'h HeaderMap>, name: &str) -> Option<&'h str> {
    h?.get(name).map(async_nats::HeaderValue::as_str)
}

/// The id a message is known by: `Qspool-Id`, else `Nats-Msg-Id` when it is a qspool id, else
/// one made from its stream time and sequence.
fn id_of(h: Option<&HeaderMap>, time_us: u64, seq: u64) -> Id {
    [names::H_ID, names::MSG_ID]
        .iter()
        .find_map(|n| header(h, n).and_then(|v| Id::parse(v).ok()))
        .unwrap_or_else(|| names::foreign_id(time_us, seq))
}

fn header_u64(h: Option<&HeaderMap>, name: &str) -> Option<u64> {
    header(h, name).and_then(|v| v.parse().ok())
}

impl Queue {
    /// Connects, failing after `CONNECT_TIMEOUT` with one line naming the address (without its
    /// password).
    pub async fn connect(url: &NatsUrl, how: &Connect) -> Result<Queue> {
        Queue::connect_with(url, how, false).await
    }

    /// `persistent`: a long-running relay, which starts even while the server is down and
    /// reconnects for as long as it runs.
    pub async fn connect_with(url: &NatsUrl, how: &Connect, persistent: bool) -> Result<Queue> {
        let mut opts = async_nats::ConnectOptions::new()
            .name("qspool")
            .connection_timeout(CONNECT_TIMEOUT)
            .require_tls(url.tls);
        match (&url.user, &url.secret) {
            (Some(u), Some(p)) => opts = opts.user_and_password(u.clone(), p.clone()),
            (None, Some(t)) => opts = opts.token(t.clone()),
            _ => {}
        }
        if let Some(creds) = &how.creds {
            opts = opts
                .credentials_file(creds)
                .await
                .with_context(|| format!("read NATS credentials {}", creds.display()))?;
        }
        // The nats CLI's names for a private CA and a client certificate.
        if let Some(ca) = std::env::var_os("NATS_CA").filter(|v| !v.is_empty()) {
            opts = opts.add_root_certificates(PathBuf::from(ca));
        }
        if let (Some(cert), Some(key)) = (
            std::env::var_os("NATS_CERT").filter(|v| !v.is_empty()),
            std::env::var_os("NATS_KEY").filter(|v| !v.is_empty()),
        ) {
            opts = opts.add_client_certificate(PathBuf::from(cert), PathBuf::from(key));
        }
        opts = if persistent {
            opts.retry_on_initial_connect().max_reconnects(None)
        } else {
            // A one-shot command gives up on a server gone mid-command instead of waiting.
            opts.max_reconnects(Some(3))
        };
        let addrs = url
            .server_urls()
            .iter()
            .map(|u| u.parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| usage(format!("{url}: {e}")))?;
        let reconnects = Arc::new(Reconnects::default());
        let seen = Arc::clone(&reconnects);
        opts = opts.event_callback(move |event| {
            let seen = Arc::clone(&seen);
            async move {
                if matches!(event, async_nats::Event::Connected) {
                    seen.count.fetch_add(1, Ordering::SeqCst);
                    seen.rung.notify_waiters();
                }
            }
        });
        let client = opts
            .connect(addrs)
            .await
            .map_err(|e| anyhow!("{url}: cannot connect: {e}"))?;
        Ok(Queue {
            names: Names::of(&url.queue),
            js: js::new(client.clone()),
            client,
            url: url.clone(),
            held: None,
            reconnects,
        })
    }

    /// Everything published and acked reaches the server before the process exits.
    pub async fn flush(&self) -> Result<()> {
        match tokio::time::timeout(FLUSH_BOUND, self.client.flush()).await {
            Ok(r) => r.map_err(|e| anyhow!("{}: flush: {e}", self.url)),
            Err(_) => Err(anyhow!(
                "{}: the server did not take the last messages within {FLUSH_BOUND:?}",
                self.url
            )),
        }
    }

    fn lost(&self, r: &Receipt, why: &str) -> anyhow::Error {
        not_found(format!("{}: lease not held ({why}); receipt {r}", self.url))
    }

    /// Why a publish was not stored, naming a missing queue as every other command does.
    pub fn not_stored(&self, id: &Id, e: &js::context::PublishError) -> anyhow::Error {
        if e.kind() == js::context::PublishErrorKind::StreamNotFound {
            self.missing()
        } else {
            anyhow!("{}: push {id}: not stored: {e}", self.url)
        }
    }

    /// `missing()` when the server said "not found"; anything else (a timeout, a refusal)
    /// keeps its own text, so that a slow server is never taken for a missing queue.
    fn missing_or(&self, e: &dyn std::fmt::Display) -> anyhow::Error {
        let text = e.to_string();
        if text.contains("not found") {
            self.missing()
        } else {
            anyhow!("{}: {text}", self.url)
        }
    }

    pub(crate) fn missing(&self) -> anyhow::Error {
        anyhow::Error::new(Missing(format!(
            "{}: no such queue (stream {} or consumer {} missing); create it with `qspool --spool {} init`",
            self.url,
            self.names.stream,
            names::CONSUMER,
            self.url
        )))
    }

    // ---- init -------------------------------------------------------------------------

    /// Creates the streams, the consumer and the fence bucket, or changes the settings given;
    /// an existing queue keeps every setting it is not given.
    pub async fn init(
        &self,
        max_attempts: Option<u32>,
        lease_ms: Option<u64>,
        dedup_window_ms: Option<u64>,
        replicas: Option<usize>,
    ) -> Result<QueueSettings> {
        // Defaults only for a queue that is not there: a server that did not answer must not
        // make init reset a queue's settings.
        let old = match self.settings().await {
            Ok(s) => Some(s),
            Err(e) if e.downcast_ref::<Missing>().is_some() => None,
            Err(e) => return Err(e),
        };
        let s = QueueSettings {
            max_attempts: max_attempts.or(old.map(|o| o.max_attempts)).unwrap_or(5),
            lease_ms: lease_ms.or(old.map(|o| o.lease_ms)).unwrap_or(30_000),
            dedup_window_ms: dedup_window_ms
                .or(old.map(|o| o.dedup_window_ms))
                .unwrap_or(300_000),
            replicas: replicas.or(old.map(|o| o.replicas)).unwrap_or(1),
        };
        let n = &self.names;
        let ctx = |what: &str| format!("{}: create or update {what}", self.url);
        self.js
            .create_or_update_stream(stream::Config {
                name: n.stream.clone(),
                subjects: vec![n.subject.clone()],
                retention: RetentionPolicy::WorkQueue,
                storage: StorageType::File,
                num_replicas: s.replicas,
                duplicate_window: Duration::from_millis(s.dedup_window_ms),
                discard: DiscardPolicy::Old,
                allow_direct: true,
                description: Some(format!("qspool queue {}", n.queue)),
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow!("{}: {e}", ctx(&format!("stream {}", n.stream))))?;
        self.js
            .create_or_update_stream(stream::Config {
                name: n.dead_stream.clone(),
                subjects: vec![n.dead_subject.clone()],
                retention: RetentionPolicy::Limits,
                storage: StorageType::File,
                num_replicas: s.replicas,
                duplicate_window: Duration::from_millis(s.dedup_window_ms),
                allow_direct: true,
                description: Some(format!("qspool dead letters of {}", n.queue)),
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow!("{}: {e}", ctx(&format!("stream {}", n.dead_stream))))?;
        let stream = self
            .js
            .get_stream(&n.stream)
            .await
            .map_err(|e| anyhow!("{}: {e}", ctx("the stream")))?;
        let config = pull::Config {
            durable_name: Some(names::CONSUMER.to_owned()),
            description: Some(
                Settings {
                    max_attempts: s.max_attempts,
                }
                .describe(),
            ),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_millis(s.lease_ms),
            // qspool counts attempts itself and moves the message to the dead letters; the
            // server never stops delivering, so no message is ever stranded in the stream.
            max_deliver: -1,
            max_ack_pending: -1,
            filter_subject: n.subject.clone(),
            ..Default::default()
        };
        // On nats-server 2.9 a durable consumer's create is also its update.
        stream
            .create_consumer(config)
            .await
            .map_err(|e| anyhow!("{}: {e}", ctx("consumer qspool")))?;
        // A fence outlives its lease by far, yet the bucket forgets fences that nothing
        // settled (another client acked the message): a live lease's fence is rewritten at
        // every extend, so it is never older than the lease.
        let fence_age = Duration::from_millis(s.lease_ms.saturating_mul(2).max(60_000) + 60_000);
        // The bucket's stream is made by hand, as the key-value convention lays it out: the
        // client's own helper asks for account details nats-server 2.9 does not send.
        self.js
            .create_or_update_stream(stream::Config {
                name: format!("KV_{}", n.bucket),
                subjects: vec![format!("$KV.{}.>", n.bucket)],
                max_messages_per_subject: 1,
                max_age: fence_age,
                storage: StorageType::File,
                num_replicas: s.replicas,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                discard: DiscardPolicy::New,
                description: Some(format!("qspool lease fences of {}", n.queue)),
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow!("{}: {e}", ctx(&format!("bucket {}", n.bucket))))?;
        // What the server applies (a window of 0 is its default, 2 minutes), not what was asked.
        self.settings().await
    }

    /// The queue's settings as the server has them.
    pub async fn settings(&self) -> Result<QueueSettings> {
        let mut stream = self
            .js
            .get_stream(&self.names.stream)
            .await
            .map_err(|e| self.missing_or(&e))?;
        let info = stream
            .info()
            .await
            .map_err(|e| self.missing_or(&e))?
            .clone();
        let c = stream
            .consumer_info(names::CONSUMER)
            .await
            .map_err(|e| self.missing_or(&e))?;
        let max_attempts =
            Settings::parse(c.config.description.as_deref()).map_or(5, |s| s.max_attempts);
        Ok(QueueSettings {
            max_attempts,
            lease_ms: u64::try_from(c.config.ack_wait.as_millis()).unwrap_or(u64::MAX),
            dedup_window_ms: u64::try_from(info.config.duplicate_window.as_millis())
                .unwrap_or(u64::MAX),
            replicas: info.config.num_replicas,
        })
    }

    /// Looks up the consumer and the fence bucket (both at once: one round trip), for the
    /// commands that lease and settle.
    pub async fn open_consumer(&mut self) -> Result<()> {
        let consumer = async {
            let stream = self
                .js
                .get_stream_no_info(&self.names.stream)
                .await
                .map_err(|e| self.missing_or(&e))?;
            let c: PullConsumer = stream
                .get_consumer(names::CONSUMER)
                .await
                .map_err(|e| self.missing_or(&e))?;
            Ok::<_, anyhow::Error>(c)
        };
        let bucket = async {
            self.js
                .get_key_value(&self.names.bucket)
                .await
                .map_err(|e| self.missing_or(&e))
        };
        let (c, b) = futures_util::future::join(consumer, bucket).await;
        let (c, b) = (c?, b?);
        let cfg = &c.cached_info().config;
        let s = QueueSettings {
            max_attempts: Settings::parse(cfg.description.as_deref()).map_or(5, |s| s.max_attempts),
            lease_ms: u64::try_from(cfg.ack_wait.as_millis()).unwrap_or(u64::MAX),
            dedup_window_ms: 0,
            replicas: 0,
        };
        self.held = Some((c, s, b));
        Ok(())
    }

    /// The lease, as the consumer's ack wait: after `open_consumer`.
    pub fn lease_ms(&self) -> Result<u64> {
        self.opened().map(|(_, s, _)| s.lease_ms)
    }

    fn opened(&self) -> Result<&(PullConsumer, QueueSettings, kv::Store)> {
        self.held
            .as_ref()
            .ok_or_else(|| anyhow!("{}: the consumer was not opened", self.url))
    }

    // ---- push -------------------------------------------------------------------------

    /// Publishes one message; the returned future resolves when the server has stored it.
    pub async fn publish(
        &self,
        id: &Id,
        enqueued_us: u64,
        attempt: Option<u64>,
        payload: Bytes,
    ) -> Result<js::context::PublishAckFuture, js::context::PublishError> {
        let mut h = HeaderMap::new();
        h.insert(names::MSG_ID, id.as_str());
        h.insert(names::H_ENQUEUED, enqueued_us.to_string().as_str());
        if let Some(a) = attempt {
            h.insert(names::H_ATTEMPT, a.to_string().as_str());
        }
        self.js
            .publish_with_headers(self.names.subject.clone(), h, payload)
            .await
    }

    // ---- lease ------------------------------------------------------------------------

    /// Leases up to `want` messages. `wait`: how long the server may hold the request for the
    /// first one (`None`: answer at once). Messages past their last attempt are moved to the
    /// dead letters on the way, as a directory's pop does.
    pub async fn lease(&self, want: usize, wait: Option<Duration>) -> Result<Vec<Held>> {
        let (consumer, s, bucket) = self.opened()?;
        let mut held = Vec::new();
        let mut first_wait = wait;
        // Each round asks for what is still wanted; a round that brings nothing ends it.
        for _ in 0..want.saturating_add(8) {
            let ask = want - held.len();
            if ask == 0 {
                break;
            }
            let asked_ms = now_ms();
            let waited = first_wait.is_some() && held.is_empty();
            let batch = match first_wait.take() {
                Some(w) if held.is_empty() => consumer
                    .batch()
                    .max_messages(1)
                    .expires(w.max(Duration::from_millis(100)))
                    .messages()
                    .await
                    .map_err(|e| anyhow!("{}: fetch: {e}", self.url))?,
                // An answer comes at once; the expiry only bounds a connection lost meanwhile.
                _ => consumer
                    .fetch()
                    .max_messages(ask)
                    .messages()
                    .await
                    .map_err(|e| anyhow!("{}: fetch: {e}", self.url))?,
            };
            let mut batch = batch;
            let mut delivered = Vec::new();
            // Bounded, so that a connection lost after the request cannot hang the pop (an
            // expiry on the request itself would leave it pending on the server).
            let bound = wait.unwrap_or_default() + FETCH_BOUND;
            let until = tokio::time::Instant::now() + bound;
            loop {
                let next = match tokio::time::timeout_at(until, batch.next()).await {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    Err(_) => bail!("{}: fetch: no answer within {bound:?}", self.url),
                };
                let m = next.map_err(|e| anyhow!("{}: fetch: {e}", self.url))?;
                // An answered-at-once request's messages were all sent when it was answered,
                // so its time holds for each; only a request the server held may have been
                // answered much later, when its one message arrived.
                let late = waited && now_ms().saturating_sub(asked_ms) > ARRIVAL_MARGIN_MS;
                delivered.push((m, (!late).then_some(asked_ms)));
            }
            if delivered.is_empty() {
                break;
            }
            // Each fence is its own few round trips: the batch's are taken all at once.
            let taken = futures_util::future::join_all(
                delivered
                    .into_iter()
                    .map(|(m, start)| self.hold(bucket, m, start, s)),
            )
            .await;
            let mut failed = None;
            for t in taken {
                match t {
                    Ok(Some(h)) => held.push(h),
                    Ok(None) => {}
                    Err(e) => failed = failed.or(Some(e)),
                }
            }
            if let Some(e) = failed {
                // Never keep leases whose payload will reach nobody: back to the queue now.
                for h in &held {
                    let _ = self.requeue(&h.receipt, 0).await;
                }
                return Err(e);
            }
        }
        Ok(held)
    }

    /// Takes the fence of one delivered message. `None` when it is not ours to hand out: a
    /// later delivery holds it already, or it was past its last attempt and is now dead.
    async fn hold(
        &self,
        bucket: &kv::Store,
        m: js::Message,
        start_ms: Option<u64>,
        s: &QueueSettings,
    ) -> Result<Option<Held>> {
        let start_ms = match start_ms {
            Some(t) => t,
            None => {
                // "In progress" restarts the server's timer no earlier than now: the lease
                // counts from here, whatever the delay between its sending and this.
                let t = now_ms();
                m.double_ack_with(AckKind::Progress)
                    .await
                    .map_err(|e| anyhow!("{}: restart the lease timer: {e}", self.url))?;
                t
            }
        };
        let info = m
            .info()
            .map_err(|e| anyhow!("{}: delivery: {e}", self.url))?;
        let seq = info.stream_sequence;
        let delivered = u64::try_from(info.delivered).unwrap_or(0);
        let published_us = time_us(&info.published);
        let reply = m
            .reply
            .as_ref()
            .map(ToString::to_string)
            .ok_or_else(|| anyhow!("{}: a delivery without a reply subject", self.url))?;
        let h = m.headers.as_ref();
        let id = id_of(h, published_us, seq);
        let enqueued_us = header_u64(h, names::H_ENQUEUED).unwrap_or(published_us);
        let fence = Fence {
            id: id.clone(),
            delivered,
            expires_ms: start_ms.saturating_add(s.lease_ms),
            reply,
        };
        let Some(rev) = self.take_fence(bucket, seq, &fence).await? else {
            return Ok(None);
        };
        let receipt = Receipt { id, seq, rev };
        if delivered > u64::from(s.max_attempts) {
            self.dead_letter(
                bucket,
                &receipt,
                &fence,
                delivered - 1,
                enqueued_us,
                &m.payload,
                "max-attempts",
            )
            .await?;
            return Ok(None);
        }
        Ok(Some(Held {
            receipt,
            attempt: delivered,
            enqueued_us,
            expires_ms: fence.expires_ms,
            payload: m.payload.clone(),
        }))
    }

    /// Writes this delivery's fence over any older delivery's, compare-and-set on the
    /// revision. `None` when a later (or the same) delivery has it: that holder wins.
    async fn take_fence(&self, bucket: &kv::Store, seq: u64, f: &Fence) -> Result<Option<u64>> {
        let key = seq.to_string();
        let value = Bytes::from(f.encode());
        for _ in 0..16 {
            let current = bucket
                .entry(key.clone())
                .await
                .map_err(|e| anyhow!("{}: read fence {key}: {e}", self.url))?;
            let live = current.filter(|e| e.operation == kv::Operation::Put);
            match live {
                None => match bucket.create(&key, value.clone()).await {
                    Ok(rev) => return Ok(Some(rev)),
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => continue,
                    Err(e) => bail!("{}: write fence {key}: {e}", self.url),
                },
                Some(e) => {
                    // Another message's fence (a stream made again restarts its sequences) is
                    // stale, whatever its delivery count.
                    if Fence::decode(&e.value)
                        .is_some_and(|old| old.id == f.id && old.delivered >= f.delivered)
                    {
                        return Ok(None);
                    }
                    match bucket.update(&key, value.clone(), e.revision).await {
                        Ok(rev) => return Ok(Some(rev)),
                        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                        Err(e) => bail!("{}: write fence {key}: {e}", self.url),
                    }
                }
            }
        }
        bail!("{}: fence {key} keeps changing under this pop", self.url)
    }

    /// The fence of a receipt, if it is still the holder's and the lease has not run out.
    async fn check(&self, bucket: &kv::Store, r: &Receipt) -> Result<Fence> {
        let key = r.seq.to_string();
        let entry = bucket
            .entry(key.clone())
            .await
            .map_err(|e| anyhow!("{}: read fence {key}: {e}", self.url))?
            .filter(|e| e.operation == kv::Operation::Put);
        let Some(entry) = entry else {
            return Err(self.lost(r, "settled, or its fence is gone"));
        };
        if entry.revision != r.rev {
            return Err(self.lost(
                r,
                "delivered again to another holder, or replaced by extend",
            ));
        }
        let fence =
            Fence::decode(&entry.value).ok_or_else(|| self.lost(r, "its fence is not qspool's"))?;
        if fence.id != r.id {
            return Err(self.lost(r, "the message at that sequence is another one"));
        }
        // Past this point the server may have handed the message to someone else already.
        if now_ms() >= fence.expires_ms {
            return Err(self.lost(r, "expired"));
        }
        Ok(fence)
    }

    /// Ends the holder's claim: compare-and-set on the revision, so of two settles of one
    /// receipt only one goes on to the server.
    async fn release_fence(&self, bucket: &kv::Store, r: &Receipt) -> Result<()> {
        let Err(e) = bucket
            .delete_expect_revision(r.seq.to_string(), Some(r.rev))
            .await
        else {
            return Ok(());
        };
        Err(self.lost_or(bucket, r, &e).await)
    }

    /// After a failed compare-and-set on a fence: exit 4 if the fence moved on (the lease is
    /// someone else's), else the failure itself (a timeout is not a lost lease).
    async fn lost_or(
        &self,
        bucket: &kv::Store,
        r: &Receipt,
        e: &(dyn std::fmt::Display + Sync),
    ) -> anyhow::Error {
        match bucket.entry(r.seq.to_string()).await {
            Ok(Some(entry)) if entry.revision == r.rev && entry.operation == kv::Operation::Put => {
                anyhow!("{}: fence {}: {e}", self.url, r.seq)
            }
            Ok(_) => self.lost(r, "settled or delivered again meanwhile"),
            Err(read) => anyhow!("{}: fence {}: {e}; then {read}", self.url, r.seq),
        }
    }

    async fn send(&self, reply: &str, kind: AckKind, r: &Receipt) -> Result<()> {
        let acker = Acker::new(self.js.clone(), Some(reply.to_owned().into()));
        acker
            .double_ack_with(kind)
            .await
            .map_err(|e| anyhow!("{}: settle {}: {e}", self.url, r.id))
    }

    /// `ack`: true when the lease was held and the server took the ack.
    pub async fn ack(&self, r: &Receipt) -> Result<()> {
        let (_, _, bucket) = self.opened()?;
        let fence = self.check(bucket, r).await?;
        self.release_fence(bucket, r).await?;
        self.send(&fence.reply, AckKind::Ack, r).await
    }

    /// `requeue`: back to the queue after `delay_ms`; a last attempt goes to the dead letters
    /// instead, as on a directory. Returns true when it went to the dead letters.
    pub async fn requeue(&self, r: &Receipt, delay_ms: u64) -> Result<bool> {
        let (_, s, bucket) = self.opened()?;
        let fence = self.check(bucket, r).await?;
        if fence.delivered >= u64::from(s.max_attempts) {
            self.bury_held(bucket, r, &fence, "max-attempts").await?;
            return Ok(true);
        }
        self.release_fence(bucket, r).await?;
        let delay = (delay_ms > 0).then(|| Duration::from_millis(delay_ms));
        self.send(&fence.reply, AckKind::Nak(delay), r).await?;
        Ok(false)
    }

    /// Back to the queue at once and never to the dead letters: for a message no CMD saw.
    /// The server has counted its delivery all the same.
    pub async fn give_back(&self, r: &Receipt) -> Result<()> {
        let (_, _, bucket) = self.opened()?;
        let fence = self.check(bucket, r).await?;
        self.release_fence(bucket, r).await?;
        self.send(&fence.reply, AckKind::Nak(None), r).await
    }

    /// `extend`: the server restarts the ack timer ("in progress"); the fence gets a new
    /// revision, so the old receipt stops working, as on a directory.
    pub async fn extend(&self, r: &Receipt) -> Result<(Held, Option<anyhow::Error>)> {
        let (_, s, bucket) = self.opened()?;
        let fence = self.check(bucket, r).await?;
        let start = now_ms();
        let renewed = Fence {
            expires_ms: start.saturating_add(s.lease_ms),
            ..fence.clone()
        };
        let rev = match bucket
            .update(r.seq.to_string(), Bytes::from(renewed.encode()), r.rev)
            .await
        {
            Ok(rev) => rev,
            Err(e) => return Err(self.lost_or(bucket, r, &e).await),
        };
        // The new receipt holds the fence now: it is returned even if the server's timer
        // could not be restarted (the caller prints it, then reports that).
        let progressed = self.send(&fence.reply, AckKind::Progress, r).await.err();
        let held = Held {
            receipt: Receipt { rev, ..r.clone() },
            attempt: fence.delivered,
            enqueued_us: 0,
            expires_ms: renewed.expires_ms,
            payload: Bytes::new(),
        };
        Ok((held, progressed))
    }

    /// `bury`: straight to the dead letters.
    pub async fn bury(&self, r: &Receipt) -> Result<()> {
        let (_, _, bucket) = self.opened()?;
        let fence = self.check(bucket, r).await?;
        self.bury_held(bucket, r, &fence, "buried").await
    }

    async fn bury_held(&self, bucket: &kv::Store, r: &Receipt, f: &Fence, why: &str) -> Result<()> {
        let stream = self
            .js
            .get_stream_no_info(&self.names.stream)
            .await
            .map_err(|e| self.missing_or(&e))?;
        let m = stream
            .direct_get(r.seq)
            .await
            .map_err(|e| anyhow!("{}: read message {}: {e}", self.url, r.id))?;
        let enqueued_us =
            header_u64(Some(&m.headers), names::H_ENQUEUED).unwrap_or_else(|| time_us(&m.time));
        self.dead_letter(bucket, r, f, f.delivered, enqueued_us, &m.payload, why)
            .await
    }

    /// Releases a held message's fence, copies it to the dead-letter stream, then terminates it
    /// in the live one. A crash before the copy leaves it live, delivered again after the ack
    /// wait (and dead-lettered then); one between the copy and the term leaves it in both: the
    /// next delivery dead-letters it again and the dead stream's duplicate window drops the copy.
    #[allow(clippy::too_many_arguments)]
    async fn dead_letter(
        &self,
        bucket: &kv::Store,
        r: &Receipt,
        f: &Fence,
        attempt: u64,
        enqueued_us: u64,
        payload: &Bytes,
        why: &str,
    ) -> Result<()> {
        let mut h = HeaderMap::new();
        h.insert(names::MSG_ID, format!("{}.s{}", r.id, r.seq).as_str());
        h.insert(names::H_ID, r.id.as_str());
        h.insert(names::H_ENQUEUED, enqueued_us.to_string().as_str());
        h.insert(names::H_ATTEMPT, attempt.to_string().as_str());
        h.insert(names::H_DEAD_AT, now_ms().to_string().as_str());
        h.insert(names::H_REASON, why);
        // The fence first: of two settles of one receipt only one may copy the message.
        self.release_fence(bucket, r).await?;
        self.js
            .publish_with_headers(self.names.dead_subject.clone(), h, payload.clone())
            .await
            .map_err(|e| anyhow!("{}: dead-letter {}: {e}", self.url, r.id))?
            .await
            .map_err(|e| anyhow!("{}: dead-letter {}: {e}", self.url, r.id))?;
        self.send(&f.reply, AckKind::Term, r).await
    }

    // ---- dead letters and stats ---------------------------------------------------------

    /// Every message of one stream's subject, in stream order, read with direct gets: nothing
    /// is consumed, and deleted sequences are skipped over by the server.
    async fn read_all(&self, stream: &str, subject: &str) -> Result<Vec<StreamMessage>> {
        let stream = self
            .js
            .get_stream_no_info(stream)
            .await
            .map_err(|e| self.missing_or(&e))?;
        let mut found = Vec::new();
        let mut next = 1;
        loop {
            let m = match stream
                .direct_get_next_for_subject(subject.to_owned(), Some(next))
                .await
            {
                Ok(m) => m,
                Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => return Ok(found),
                Err(e) => bail!("{}: read {subject}: {e}", self.url),
            };
            next = m.sequence + 1;
            found.push(m);
        }
    }

    /// Every dead letter, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<Dead>> {
        let n = &self.names;
        let found = self.read_all(&n.dead_stream, &n.dead_subject).await?;
        Ok(found.into_iter().map(dead_of).collect())
    }

    /// Every message of the live stream in stream order, each with its fence.
    pub async fn live(&self) -> Result<Vec<Live>> {
        let (_, _, bucket) = self.opened()?;
        let found = self
            .read_all(&self.names.stream, &self.names.subject)
            .await?;
        let fences = futures_util::future::join_all(found.iter().map(|m| {
            let key = m.sequence.to_string();
            async move {
                bucket
                    .entry(key.clone())
                    .await
                    .map_err(|e| anyhow!("{}: read fence {key}: {e}", self.url))
            }
        }))
        .await;
        let mut out = Vec::with_capacity(found.len());
        for (m, f) in found.into_iter().zip(fences) {
            let fence = f?
                .filter(|e| e.operation == kv::Operation::Put)
                .and_then(|e| Fence::decode(&e.value));
            let h = Some(&m.headers);
            let t = time_us(&m.time);
            out.push(Live {
                id: id_of(h, t, m.sequence),
                enqueued_us: header_u64(h, names::H_ENQUEUED).unwrap_or(t),
                stored_ms: t / 1000,
                payload: m.payload,
                fence,
            });
        }
        Ok(out)
    }

    /// Back to the live queue, as new (attempt 1), then removed from the dead letters.
    pub async fn replay(&self, d: &Dead) -> Result<()> {
        let mut h = HeaderMap::new();
        // Not the id alone: the live stream may still remember it inside its duplicate window.
        h.insert(names::MSG_ID, format!("{}.replay{}", d.id, d.seq).as_str());
        h.insert(names::H_ID, d.id.as_str());
        h.insert(names::H_ENQUEUED, d.enqueued_us.to_string().as_str());
        self.js
            .publish_with_headers(self.names.subject.clone(), h, d.payload.clone())
            .await
            .map_err(|e| anyhow!("{}: replay {}: {e}", self.url, d.id))?
            .await
            .map_err(|e| anyhow!("{}: replay {}: {e}", self.url, d.id))?;
        let stream = self
            .js
            .get_stream_no_info(&self.names.dead_stream)
            .await
            .map_err(|e| self.missing_or(&e))?;
        stream
            .delete_message(d.seq)
            .await
            .map_err(|e| anyhow!("{}: remove dead letter {}: {e}", self.url, d.id))?;
        Ok(())
    }

    /// What `stats` can learn from the server without consuming anything.
    pub async fn counts(&self) -> Result<Remote> {
        let mut live = self
            .js
            .get_stream(&self.names.stream)
            .await
            .map_err(|e| self.missing_or(&e))?;
        let live_state = live
            .info()
            .await
            .map_err(|e| self.missing_or(&e))?
            .state
            .clone();
        let c = live
            .consumer_info(names::CONSUMER)
            .await
            .map_err(|e| self.missing_or(&e))?;
        let mut dead = self
            .js
            .get_stream(&self.names.dead_stream)
            .await
            .map_err(|e| self.missing_or(&e))?;
        let dead_state = dead
            .info()
            .await
            .map_err(|e| self.missing_or(&e))?
            .state
            .clone();
        let oldest = |st: &stream::State| (st.messages > 0).then(|| time_us(&st.first_timestamp));
        Ok(Remote {
            ready: c.num_pending,
            leased: c.num_ack_pending as u64,
            dead: dead_state.messages,
            live_bytes: live_state.bytes,
            dead_bytes: dead_state.bytes,
            oldest_live_us: oldest(&live_state),
            oldest_dead_us: oldest(&dead_state),
        })
    }
}

fn dead_of(m: StreamMessage) -> Dead {
    let h = Some(&m.headers);
    let t = time_us(&m.time);
    Dead {
        seq: m.sequence,
        id: id_of(h, t, m.sequence),
        attempt: header_u64(h, names::H_ATTEMPT).unwrap_or(0),
        enqueued_us: header_u64(h, names::H_ENQUEUED).unwrap_or(t),
        dead_ms: header_u64(h, names::H_DEAD_AT).unwrap_or(t / 1000),
        payload: m.payload,
    }
}
