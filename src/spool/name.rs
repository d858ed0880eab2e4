//! The filename grammar: every name qspool gives a message, parsed and formatted in one place.
//!
//! `docs/FORMAT.md` is the normative description; this module is its executable form. Anything
//! that does not parse here is foreign to qspool and is never opened, moved or deleted.

use std::fmt;

/// Longest name qspool ever makes is well under this; anything longer is refused unread.
pub const MAX_NAME_LEN: usize = 160;
/// Millisecond timestamps are written with exactly this many digits (valid until the year 2286).
pub const MS_DIGITS: usize = 13;
/// Largest millisecond timestamp the grammar can hold.
pub const MAX_MS: u64 = 9_999_999_999_999;
/// Largest microsecond timestamp an id can hold: `MAX_MS` and 999 µs, so that a clamped clock
/// in microseconds and in milliseconds agree.
pub const MAX_US: u64 = MAX_MS * 1000 + 999;
const TIME_DIGITS: usize = 16;
const MAX_PID_DIGITS: usize = 10;
const HEX8: usize = 8;
const TOKEN_DIGITS: usize = 16;
const MAX_HOST_LEN: usize = 32;

/// Why a string is not a name of the grammar; shown to the user after the offending text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError(pub &'static str);

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for NameError {}

type Parsed<T> = Result<T, NameError>;

/// A message id: `TIME.PID.COUNTER.RANDOM.HOST`, unique without locks and sorting by enqueue time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(String);

impl Id {
    /// Builds an id from its parts; `host` must already be a valid host tag.
    pub fn from_parts(time_us: u64, pid: u32, counter: u32, random: u32, host: &str) -> Id {
        debug_assert!(valid_host(host));
        Id(format!(
            "{time_us:016}.{pid}.{counter:08x}.{random:08x}.{host}"
        ))
    }

    pub fn parse(s: &str) -> Parsed<Id> {
        check_text(s)?;
        let mut parts = s.splitn(5, '.');
        let (Some(time), Some(pid), Some(counter), Some(random), Some(host)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(NameError("an id has five dot-separated parts"));
        };
        if time.len() != TIME_DIGITS || !all_digits(time) {
            return Err(NameError("an id starts with 16 digits of microseconds"));
        }
        if pid.is_empty() || pid.len() > MAX_PID_DIGITS || !canonical_decimal(pid) {
            return Err(NameError("the process id part is not a decimal number"));
        }
        if pid.parse::<u32>().is_err() {
            return Err(NameError("the process id part is out of range"));
        }
        if !is_hex(counter, HEX8) || !is_hex(random, HEX8) {
            return Err(NameError(
                "counter and random parts are 8 lowercase hex digits",
            ));
        }
        if !valid_host(host) {
            return Err(NameError("the host tag is 1-32 of A-Z a-z 0-9 -"));
        }
        Ok(Id(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Microseconds since the Unix epoch at which the message was first pushed.
    pub fn enqueued_us(&self) -> u64 {
        self.0[..TIME_DIGITS].parse().unwrap_or(0)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A message waiting in `new/` (and, under the same name, being written in `tmp/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ready {
    pub id: Id,
    /// Leases it has had so far: 0 for a fresh or replayed message.
    pub attempts: u32,
    pub visible_ms: u64,
    /// The hash of its dedup key (`push --key`), if it has one.
    pub key: Option<KeyHash>,
    /// The hash of its group (`push --group`), if it has one.
    pub group: Option<KeyHash>,
}

/// A message in `leased/`. Its name is the receipt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leased {
    pub id: Id,
    /// Which lease this is: 1 on the first delivery.
    pub attempt: u32,
    pub expires_ms: u64,
    pub token: u64,
    pub key: Option<KeyHash>,
    pub group: Option<KeyHash>,
}

/// A message in `done/` or `dead/`: it has left the queue at `at_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    pub id: Id,
    pub attempts: u32,
    pub at_ms: u64,
    pub key: Option<KeyHash>,
    pub group: Option<KeyHash>,
}

/// The hash that stands for a message's dedup key in its names and in `keys/`: FNV-1a, 64
/// bits, of the key's bytes (FORMAT.md §3.5). The key itself is never part of a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyHash(pub u64);

impl KeyHash {
    pub fn of(key: &[u8]) -> KeyHash {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in key {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        KeyHash(h)
    }

    /// The 16 lowercase hex digits used in names and as the record's file name.
    pub fn hex(self) -> String {
        format!("{:016x}", self.0)
    }

    pub fn parse_hex(s: &str) -> Parsed<KeyHash> {
        if !is_hex(s, TOKEN_DIGITS) {
            return Err(NameError("a key hash is 16 lowercase hex digits"));
        }
        u64::from_str_radix(s, 16)
            .map(KeyHash)
            .map_err(|_| NameError("bad key hash"))
    }
}

/// The optional fields a name ends with: `,k` and the key's hash, then `,g` and the group's.
struct Tail(Option<KeyHash>, Option<KeyHash>);

impl fmt::Display for Tail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(k) = self.0 {
            write!(f, ",k{:016x}", k.0)?;
        }
        if let Some(g) = self.1 {
            write!(f, ",g{:016x}", g.0)?;
        }
        Ok(())
    }
}

/// The optional fields of a name, as parsed.
type Tags = (Option<KeyHash>, Option<KeyHash>);

impl Ready {
    pub fn parse(s: &str) -> Parsed<Ready> {
        let (id, attempts, visible_ms, (key, group)) = counted_at(s, b'v')?;
        Ok(Ready {
            id,
            attempts,
            visible_ms,
            key,
            group,
        })
    }

    /// The `new/` sub-directories this message lives under.
    pub fn bucket(&self) -> Bucket {
        Bucket::of(self.visible_ms)
    }
}

impl Leased {
    pub fn parse(s: &str) -> Parsed<Leased> {
        let (id, rest) = split_id(s)?;
        let ([a, l, t], (key, group)) = fields(rest, [b'a', b'l', b't'])?;
        let attempt = count(a)?;
        if attempt == 0 {
            return Err(NameError("a lease is attempt 1 or later"));
        }
        if !is_hex(t, TOKEN_DIGITS) {
            return Err(NameError("a lease token is 16 lowercase hex digits"));
        }
        Ok(Leased {
            id,
            attempt,
            expires_ms: ms(l)?,
            token: u64::from_str_radix(t, 16).map_err(|_| NameError("bad lease token"))?,
            key,
            group,
        })
    }
}

impl Ended {
    pub fn parse(s: &str) -> Parsed<Ended> {
        let (id, attempts, at_ms, (key, group)) = counted_at(s, b'f')?;
        Ok(Ended {
            id,
            attempts,
            at_ms,
            key,
            group,
        })
    }
}

/// The id, attempt count, time and key of a name of two fields, `,a<count>,<tag><ms>`, and
/// the optional key: the shape of ready names (`v`) and ended names (`f`).
fn counted_at(s: &str, time_tag: u8) -> Parsed<(Id, u32, u64, Tags)> {
    let (id, rest) = split_id(s)?;
    let ([a, t], tags) = fields(rest, [b'a', time_tag])?;
    Ok((id, count(a)?, ms(t)?, tags))
}

impl fmt::Display for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{},a{},v{:013}{}",
            self.id,
            self.attempts,
            self.visible_ms,
            Tail(self.key, self.group)
        )
    }
}

impl fmt::Display for Leased {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{},a{},l{:013},t{:016x}{}",
            self.id,
            self.attempt,
            self.expires_ms,
            self.token,
            Tail(self.key, self.group)
        )
    }
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{},a{},f{:013}{}",
            self.id,
            self.attempts,
            self.at_ms,
            Tail(self.key, self.group)
        )
    }
}

/// The three-level directory path under `new/` for one visible-at millisecond:
/// `new/KKKKKKK/SSS/MMM/`, thousands of seconds, seconds within them, milliseconds within those.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bucket(pub u64);

/// The width of each bucket level's name, outermost first.
pub const BUCKET_WIDTHS: [usize; 3] = [7, 3, 3];
/// How many milliseconds one entry of each level spans.
pub const BUCKET_SPANS: [u64; 3] = [1_000_000, 1_000, 1];
/// The level of `new/`'s leaves: one per visible-at millisecond.
pub const NEW_DEPTH: usize = 3;
/// The level of `leased/`'s leaves: one per second of expiry. A pop makes a lease's bucket
/// (and fsyncs its parent) once per second of expiry, not once per lease, and lists at most
/// the current second's leases beyond bucket names.
pub const LEASED_DEPTH: usize = 2;

impl Bucket {
    pub fn of(visible_ms: u64) -> Bucket {
        Bucket(visible_ms)
    }

    /// The three directory names, outermost first.
    pub fn parts(self) -> [String; 3] {
        let ms = self.0;
        [
            format!("{:07}", ms / 1_000_000),
            format!("{:03}", (ms / 1_000) % 1_000),
            format!("{:03}", ms % 1_000),
        ]
    }

    pub fn rel_path(self) -> String {
        let [a, b, c] = self.parts();
        format!("{a}/{b}/{c}")
    }
}

/// The two-level directory path under `leased/` for one lease: `leased/KKKKKKK/SSS/`, from
/// the expiry in its name, so that a receipt names its file's whole path.
pub fn lease_parts(expires_ms: u64) -> [String; 2] {
    [
        format!("{:07}", expires_ms / 1_000_000),
        format!("{:03}", (expires_ms / 1_000) % 1_000),
    ]
}

/// The first millisecond of the `leased/` bucket of a lease expiring at `expires_ms`.
pub fn lease_bucket_start(expires_ms: u64) -> u64 {
    expires_ms - expires_ms % 1_000
}

/// Parses one level's directory name (`level` 0, 1 or 2) into its numeric value.
pub fn bucket_level(name: &str, level: usize) -> Option<u64> {
    if name.len() == BUCKET_WIDTHS[level] && all_digits(name) {
        name.parse().ok()
    } else {
        None
    }
}

/// A host tag made from a host name: its first label, restricted to the tag alphabet.
pub fn host_tag(hostname: &str) -> String {
    let first = hostname.split('.').next().unwrap_or("");
    let tag: String = first
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(MAX_HOST_LEN)
        .collect();
    if tag.is_empty() {
        "localhost".to_owned()
    } else {
        tag
    }
}

fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= MAX_HOST_LEN
        && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Checks that apply before any structure: length and alphabet. They keep paths out of the grammar.
fn check_text(s: &str) -> Parsed<()> {
    if s.is_empty() {
        return Err(NameError("empty"));
    }
    if s.len() > MAX_NAME_LEN {
        return Err(NameError("too long"));
    }
    if s.bytes().any(|b| b.is_ascii_control()) {
        return Err(NameError("contains a control character"));
    }
    if s.contains('/') {
        return Err(NameError("contains '/'"));
    }
    if s.starts_with('.') {
        return Err(NameError("starts with '.'"));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b',' | b'-'))
    {
        return Err(NameError("contains a character outside A-Z a-z 0-9 . , -"));
    }
    Ok(())
}

fn split_id(s: &str) -> Parsed<(Id, &str)> {
    check_text(s)?;
    let (id, rest) = s.split_once(',').ok_or(NameError("no ',' after the id"))?;
    Ok((Id::parse(id)?, rest))
}

/// Splits `a1,v123` into the values of the expected tags, in order, then the optional key
/// and group fields (`,k<16 hex>`, `,g<16 hex>`, in that order), and nothing else.
fn fields<const N: usize>(rest: &str, tags: [u8; N]) -> Parsed<([&str; N], Tags)> {
    let mut out = [""; N];
    let mut parts = rest.split(',');
    for (slot, tag) in out.iter_mut().zip(tags) {
        let part = parts
            .next()
            .ok_or(NameError("a field is missing after the id"))?;
        if part.as_bytes().first() != Some(&tag) {
            return Err(NameError(
                "fields after the id are not the ones this state has",
            ));
        }
        *slot = &part[1..];
    }
    let mut next = parts.next();
    let mut tags = [None; 2];
    for (slot, tag) in tags.iter_mut().zip(['k', 'g']) {
        if let Some(hex) = next.and_then(|f| f.strip_prefix(tag)) {
            *slot = Some(KeyHash::parse_hex(hex)?);
            next = parts.next();
        }
    }
    let [key, group] = tags;
    if next.is_some() {
        return Err(NameError("extra fields after the id"));
    }
    Ok((out, (key, group)))
}

fn count(s: &str) -> Parsed<u32> {
    if !canonical_decimal(s) {
        return Err(NameError(
            "an attempt count is a decimal number without leading zeros",
        ));
    }
    s.parse()
        .map_err(|_| NameError("an attempt count is out of range"))
}

fn ms(s: &str) -> Parsed<u64> {
    if s.len() != MS_DIGITS || !all_digits(s) {
        return Err(NameError("a time field is 13 digits of milliseconds"));
    }
    s.parse().map_err(|_| NameError("bad time field"))
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn canonical_decimal(s: &str) -> bool {
    all_digits(s) && (s == "0" || !s.starts_with('0'))
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Id {
        Id::from_parts(1_795_833_091_123_456, 4242, 7, 0xdead_beef, "box-1")
    }

    #[test]
    fn id_round_trips() {
        let id = id();
        assert_eq!(id.as_str(), "1795833091123456.4242.00000007.deadbeef.box-1");
        assert_eq!(Id::parse(id.as_str()).unwrap(), id);
        assert_eq!(id.enqueued_us(), 1_795_833_091_123_456);
    }

    #[test]
    fn ids_sort_by_time_then_counter() {
        let a = Id::from_parts(1_000_000_000_000_001, 9, 0xff, 1, "h");
        let b = Id::from_parts(1_000_000_000_000_001, 9, 0x100, 0, "h");
        let c = Id::from_parts(1_000_000_000_000_002, 1, 0, 0, "a");
        assert!(a < b && b < c);
        assert!(a.as_str() < b.as_str() && b.as_str() < c.as_str());
    }

    #[test]
    fn state_names_round_trip() {
        let r = Ready {
            id: id(),
            attempts: 3,
            visible_ms: 1_795_833_091_123,
            key: None,
            group: None,
        };
        assert_eq!(Ready::parse(&r.to_string()).unwrap(), r);
        let l = Leased {
            id: id(),
            attempt: 1,
            expires_ms: 1_795_833_121_123,
            token: 0x0123_4567_89ab_cdef,
            key: None,
            group: None,
        };
        let s = l.to_string();
        assert!(s.ends_with(",a1,l1795833121123,t0123456789abcdef"), "{s}");
        assert_eq!(Leased::parse(&s).unwrap(), l);
        let e = Ended {
            id: id(),
            attempts: 5,
            at_ms: 42,
            key: None,
            group: None,
        };
        assert!(e.to_string().ends_with(",a5,f0000000000042"));
        assert_eq!(Ended::parse(&e.to_string()).unwrap(), e);
        assert!(l.to_string().len() <= MAX_NAME_LEN);
    }

    #[test]
    fn key_fields_round_trip_in_every_state_and_the_longest_name_fits() {
        let hash = KeyHash::of(b"order-1234");
        let key = Some(hash);
        let long_id = Id::from_parts(MAX_US, u32::MAX, u32::MAX, u32::MAX, &"h".repeat(32));
        let r = Ready {
            id: long_id.clone(),
            attempts: u32::MAX,
            visible_ms: MAX_MS,
            key,
            group: None,
        };
        assert!(r.to_string().ends_with(&format!(",k{}", hash.hex())));
        assert_eq!(Ready::parse(&r.to_string()).unwrap(), r);
        let l = Leased {
            id: long_id.clone(),
            attempt: u32::MAX,
            expires_ms: MAX_MS,
            token: u64::MAX,
            key,
            group: None,
        };
        assert_eq!(Leased::parse(&l.to_string()).unwrap(), l);
        assert_eq!(l.to_string().len(), 141);
        let both = Leased {
            group: Some(KeyHash::of(b"customer-42")),
            ..l.clone()
        };
        assert_eq!(Leased::parse(&both.to_string()).unwrap(), both);
        assert_eq!(both.to_string().len(), 159);
        assert!(both.to_string().len() <= MAX_NAME_LEN);
        // The group comes after the key, never before.
        let swapped = format!(
            "{},g{},k{}",
            both.to_string().rsplitn(3, ',').nth(2).unwrap(),
            KeyHash::of(b"customer-42").hex(),
            hash.hex()
        );
        assert!(Leased::parse(&swapped).is_err(), "{swapped}");
        let e = Ended {
            id: long_id,
            attempts: 0,
            at_ms: 0,
            key,
            group: None,
        };
        assert_eq!(Ended::parse(&e.to_string()).unwrap(), e);
        let good = r.to_string();
        for bad in [
            format!("{good},k0000000000000000"),
            good.replace(",k", ",K"),
            good.replace(",k", ",x"),
            good[..good.len() - 1].to_owned(),
            format!("{}A", &good[..good.len() - 1]),
        ] {
            assert!(Ready::parse(&bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn a_name_belongs_to_one_state_only() {
        let r = Ready {
            id: id(),
            attempts: 0,
            visible_ms: 5,
            key: None,
            group: None,
        }
        .to_string();
        assert!(Leased::parse(&r).is_err());
        assert!(Ended::parse(&r).is_err());
        assert!(Id::parse(&r).is_err());
    }

    #[test]
    fn hostile_and_malformed_text_is_refused() {
        let good = Leased {
            id: id(),
            attempt: 2,
            expires_ms: 1,
            token: 1,
            key: None,
            group: None,
        }
        .to_string();
        let long = "1".repeat(MAX_NAME_LEN + 1);
        let bad = [
            "".to_owned(),
            "..".to_owned(),
            "../leased/x".to_owned(),
            format!("../{good}"),
            format!("{good}/"),
            format!("{good}\n"),
            format!(".{good}"),
            format!("{good} "),
            format!("{good},x1"),
            good.replace(",a2,", ",a02,"),
            good.replace(",a2,", ",a0,"),
            good.replace(",t", ",T"),
            good.replacen("1795833091123456", "179583309112345", 1),
            good.replace("deadbeef", "DEADBEEF"),
            good.replace("box-1", "box_1"),
            good.replace(",l0000000000001", ",l1"),
            long,
            "é".to_owned(),
        ];
        for s in bad {
            assert!(Leased::parse(&s).is_err(), "accepted {s:?}");
        }
        assert!(Leased::parse(&good).is_ok());
    }

    #[test]
    fn ids_refuse_paths_and_junk() {
        for s in [
            "",
            "/etc/passwd",
            "1795833091123456.1.00000000.00000000",
            "1795833091123456.01.00000000.00000000.h",
            "1795833091123456.99999999999.00000000.00000000.h",
            "1795833091123456.1.0000000g.00000000.h",
            "1795833091123456.1.00000000.00000000.h.x",
            "1795833091123456.1.00000000.00000000.",
        ] {
            assert!(Id::parse(s).is_err(), "accepted {s:?}");
        }
    }

    #[test]
    fn buckets_split_milliseconds_in_three_levels() {
        let b = Bucket::of(1_795_833_091_123);
        assert_eq!(b.parts(), ["1795833", "091", "123"]);
        assert_eq!(b.rel_path(), "1795833/091/123");
        assert_eq!(bucket_level("1795833", 0), Some(1_795_833));
        assert_eq!(bucket_level("091", 1), Some(91));
        assert_eq!(bucket_level("91", 1), None);
        assert_eq!(bucket_level("09a", 2), None);
        let parts = b.parts();
        let back: u64 = (0..3)
            .map(|l| bucket_level(&parts[l], l).unwrap() * BUCKET_SPANS[l])
            .sum();
        assert_eq!(back, 1_795_833_091_123);
    }

    #[test]
    fn a_lease_bucket_is_the_second_of_its_expiry_and_reads_back_to_its_start() {
        for l in [
            0,
            999,
            1_000,
            1_795_833_091_123,
            1_795_833_999_999,
            9_999_999_999_999,
        ] {
            let parts = lease_parts(l);
            let start: u64 = (0..LEASED_DEPTH)
                .map(|i| bucket_level(&parts[i], i).unwrap() * BUCKET_SPANS[i])
                .sum();
            assert_eq!(start, lease_bucket_start(l), "{l}");
            assert!(
                start <= l && l < start + BUCKET_SPANS[LEASED_DEPTH - 1],
                "{l}"
            );
            // The first two levels of new/'s bucket of the same millisecond.
            assert_eq!(parts[..], Bucket::of(l).parts()[..LEASED_DEPTH], "{l}");
        }
        assert_eq!(lease_parts(1_795_833_091_123), ["1795833", "091"]);
    }

    #[test]
    fn host_tags_are_sanitised() {
        assert_eq!(host_tag("web-01.example.com"), "web-01");
        assert_eq!(host_tag("we b_01"), "web01");
        assert_eq!(host_tag(""), "localhost");
        assert_eq!(host_tag(&"x".repeat(99)).len(), 32);
    }
}
