//! What `--spool` names: a directory, or a queue on a NATS JetStream server. Parsing, the
//! refusal of unknown URL schemes, and the one way an address is shown (never with a secret).

use crate::exit::usage;
use anyhow::Result;
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// The URL schemes a spool address may have. Anything else that looks like a URL is refused.
pub const SCHEMES: [&str; 2] = ["nats", "tls"];

/// Longest queue name: it becomes part of stream, bucket and subject names, which JetStream
/// keeps short.
pub const MAX_QUEUE_NAME: usize = 64;

const DEFAULT_PORT: u16 = 4222;

/// Where a command works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Dir(PathBuf),
    Nats(NatsUrl),
}

/// A queue on a NATS server or cluster: `nats://[USER:PASS@|TOKEN@]HOST[:PORT][,HOST[:PORT]…]/NAME`.
#[derive(Clone, PartialEq, Eq)]
pub struct NatsUrl {
    /// True for `tls://`: the connection must use TLS.
    pub tls: bool,
    pub user: Option<String>,
    /// A password (with `user`) or a token (without).
    pub secret: Option<String>,
    /// Every server given, as `host:port`, in order.
    pub servers: Vec<String>,
    pub queue: String,
}

/// Never prints the secret, so no error, log line or `{:?}` can leak it.
impl fmt::Debug for NatsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for NatsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "tls" } else { "nats" };
        write!(f, "{scheme}://")?;
        match (&self.user, &self.secret) {
            (Some(u), Some(_)) => write!(f, "{u}:***@")?,
            (Some(u), None) => write!(f, "{u}@")?,
            (None, Some(_)) => f.write_str("***@")?,
            (None, None) => {}
        }
        write!(f, "{}/{}", self.servers.join(","), self.queue)
    }
}

impl NatsUrl {
    /// The URLs the client connects to, credentials left out (they are given to it apart).
    pub fn server_urls(&self) -> Vec<String> {
        let scheme = if self.tls { "tls" } else { "nats" };
        self.servers
            .iter()
            .map(|s| format!("{scheme}://{s}"))
            .collect()
    }
}

/// Reads a `--spool` (or `$QSPOOL_DIR`) value. A value that starts like a URL (`scheme:`) is a
/// URL: one with a scheme qspool serves is parsed, any other is refused (exit 2), never taken
/// for a relative path. A directory whose name has a colon early is written `./x:`.
pub fn parse(value: &OsStr) -> Result<Address> {
    let Some(scheme) = scheme_of(value.as_bytes()) else {
        return Ok(Address::Dir(PathBuf::from(value)));
    };
    let text = value.to_str().ok_or_else(|| {
        usage(format!(
            "spool address {scheme}:… is not valid UTF-8 (a directory named so can be written ./{scheme}:…)"
        ))
    })?;
    let known = SCHEMES.contains(&scheme.to_ascii_lowercase().as_str());
    if !known {
        return Err(usage(format!(
            "spool address {}: unknown scheme {scheme:?}; qspool serves {} (a directory whose name starts so can be written ./{scheme}:…)",
            redact(text),
            SCHEMES.map(|s| format!("{s}://")).join(" and ")
        )));
    }
    NatsUrl::parse(text).map(Address::Nats).map_err(|why| {
        usage(format!(
            "spool address {}: {why}; the form is nats://[USER:PASS@]HOST[:PORT][,HOST[:PORT]…]/NAME",
            redact(text)
        ))
    })
}

/// `scheme` when `s` starts with `scheme:` as RFC 3986 spells a scheme (a letter, then letters,
/// digits, `+`, `-` or `.`).
fn scheme_of(s: &[u8]) -> Option<&str> {
    let colon = s.iter().position(|&b| b == b':')?;
    let scheme = &s[..colon];
    let first = *scheme.first()?;
    if !first.is_ascii_alphabetic()
        || !scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return None;
    }
    std::str::from_utf8(scheme).ok()
}

/// A URL as it may be shown: any userinfo's secret part replaced by `***`. Everything up to
/// the last `@` counts as userinfo, wherever a `/` or `:` is, so that no way of writing (or
/// mistyping) a URL shows its password.
pub fn redact(url: &str) -> String {
    let Some(at) = url.rfind('@') else {
        return url.to_owned();
    };
    let start = match url.find("://") {
        Some(i) if i < at => i + 3,
        _ => url.find(':').filter(|&i| i < at).map_or(0, |i| i + 1),
    };
    let userinfo = &url[start..at];
    let shown = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => "***".to_owned(),
    };
    format!("{}{shown}{}", &url[..start], &url[at..])
}

impl NatsUrl {
    fn parse(text: &str) -> Result<NatsUrl, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| "a nats address starts with nats:// or tls://".to_owned())?;
        let tls = scheme.eq_ignore_ascii_case("tls");
        // Userinfo ends at the last `@`, before any `/`: a password may hold both.
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((u, r)) => (Some(u), r),
            None => (None, rest),
        };
        let (hosts, path) = rest
            .split_once('/')
            .ok_or_else(|| "no queue name: end the address with /NAME".to_owned())?;
        let (user, secret) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (Some(decode(user)?), Some(decode(pass)?)),
                None => (None, Some(decode(u)?)),
            },
        };
        if user.as_deref() == Some("") {
            return Err("empty user name".into());
        }
        let mut servers = Vec::new();
        for h in hosts.split(',') {
            servers.push(server(h)?);
        }
        if path.contains(['?', '#']) {
            return Err("query and fragment are not part of a spool address".into());
        }
        check_queue_name(path)?;
        Ok(NatsUrl {
            tls,
            user,
            secret,
            servers,
            queue: path.to_owned(),
        })
    }
}

/// `host[:port]`, host a name, an IPv4 address or a bracketed IPv6 address.
fn server(h: &str) -> Result<String, String> {
    if h.is_empty() {
        return Err("empty host".into());
    }
    let (host, port) = if let Some(v6) = h.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("host {h:?}: unclosed ["))?;
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("host {h:?}: not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("host {h:?}: junk after ]"))?,
            ),
        };
        (format!("[{addr}]"), port)
    } else {
        let (host, port) = match h.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (h, None),
        };
        let ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !ok {
            return Err(format!("host {host:?} is not a host name or address"));
        }
        (host.to_owned(), port)
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("port {p:?} is not a number from 1 to 65535"))?,
    };
    Ok(format!("{host}:{port}"))
}

/// A queue name becomes a token of subjects and a part of stream names: JetStream forbids
/// `.`, `*`, `>`, whitespace and path separators there, so only these are taken.
pub fn check_queue_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("no queue name: end the address with /NAME".into());
    }
    if name.len() > MAX_QUEUE_NAME {
        return Err(format!(
            "queue name is {} bytes, the most is {MAX_QUEUE_NAME}",
            name.len()
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
    {
        return Err(format!("queue name {name:?} may hold only A-Z a-z 0-9 - _"));
    }
    Ok(())
}

/// Percent-decoding of userinfo, as URLs carry `@`, `:` and `/` in passwords.
fn decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "bad percent escape in the user part".to_owned())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the user part is not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nats(s: &str) -> NatsUrl {
        match parse(OsStr::new(s)).unwrap() {
            Address::Nats(u) => u,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn refused(s: &str) -> String {
        format!("{:#}", parse(OsStr::new(s)).unwrap_err())
    }

    #[test]
    fn paths_stay_paths() {
        for p in [
            "spool",
            "./nats:",
            "/var/spool/q",
            "a/b:c",
            "",
            "./x:y",
            "1a:b",
            "_x:",
        ] {
            assert_eq!(
                parse(OsStr::new(p)).unwrap(),
                Address::Dir(PathBuf::from(p)),
                "{p}"
            );
        }
    }

    #[test]
    fn a_nats_address_parses_with_defaults() {
        let u = nats("nats://127.0.0.1/jobs");
        assert_eq!(u.servers, ["127.0.0.1:4222"]);
        assert_eq!(u.queue, "jobs");
        assert!(!u.tls && u.user.is_none() && u.secret.is_none());
        let u = nats("tls://alice:s%40cret@a.example:4333,[::1]:5000/q_1-x");
        assert!(u.tls);
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.secret.as_deref(), Some("s@cret"));
        assert_eq!(u.servers, ["a.example:4333", "[::1]:5000"]);
        assert_eq!(
            u.server_urls(),
            ["tls://a.example:4333", "tls://[::1]:5000"]
        );
        let u = nats("NATS://tok@h/q");
        assert_eq!((u.user, u.secret.as_deref()), (None, Some("tok")));
    }

    #[test]
    fn shown_addresses_never_hold_the_secret() {
        let u = nats("nats://alice:hunter2@h:1/q");
        assert_eq!(u.to_string(), "nats://alice:***@h:1/q");
        assert_eq!(format!("{u:?}"), "nats://alice:***@h:1/q");
        assert_eq!(nats("nats://tok@h/q").to_string(), "nats://***@h:4222/q");
        let u = nats("nats://alice:hun/ter2@h/q");
        assert_eq!(u.secret.as_deref(), Some("hun/ter2"));
        assert_eq!(u.to_string(), "nats://alice:***@h:4222/q");
        for bad in [
            "nats://alice:hunter2@h:99999/q",
            "redis://alice:hunter2@h/q",
            "nats://alice:hunter2@h/",
            "nats://alice:hun/ter2@h:x/q",
            "http://alice:hunt/er2@h/q",
            "nats:alice:hunter2@h/q",
        ] {
            let e = refused(bad);
            assert!(!e.contains("hunter2"), "{e}");
            assert!(e.contains("alice:***@"), "{e}");
        }
    }

    #[test]
    fn unknown_schemes_are_refused_naming_the_known_ones() {
        for s in [
            "redis://h/q",
            "amqp://h/q",
            "nast://h/q",
            "x:",
            "file:///tmp/q",
            "c:q",
        ] {
            let e = refused(s);
            assert!(e.contains("unknown scheme"), "{s}: {e}");
            assert!(e.contains("nats:// and tls://"), "{s}: {e}");
            assert!(e.contains("./"), "{s}: {e}");
        }
    }

    #[test]
    fn malformed_nats_addresses_are_refused() {
        for s in [
            "nats:jobs",
            "nats://h",
            "nats://h/",
            "nats://h/a/b",
            "nats://h/a.b",
            "nats://h/a*",
            "nats://h:0/q",
            "nats://h:x/q",
            "nats://h:70000/q",
            "nats://:4222/q",
            "nats://h,/q",
            "nats://[zz]/q",
            "nats://h/q?x=1",
            "nats://:pw@h/q",
            "nats://h/q%41",
        ] {
            let e = refused(s);
            assert!(e.contains("spool address"), "{s}: {e}");
        }
        let long = format!("nats://h/{}", "q".repeat(MAX_QUEUE_NAME + 1));
        assert!(refused(&long).contains("most is 64"));
        assert!(matches!(
            parse(OsStr::new(&format!(
                "nats://h/{}",
                "q".repeat(MAX_QUEUE_NAME)
            )))
            .unwrap(),
            Address::Nats(_)
        ));
    }
}
