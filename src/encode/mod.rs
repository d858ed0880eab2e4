//! Text encodings for `--json` output: RFC 3339 timestamps, and base64 and JSON-string bodies
//! produced piece by piece, so that a payload of any size is encoded in bounded memory.

pub(crate) mod json;

/// Formats microseconds since the Unix epoch as RFC 3339 UTC with millisecond precision.
pub fn rfc3339_us(us: u64) -> String {
    rfc3339_ms(us / 1000)
}

/// Formats milliseconds since the Unix epoch as RFC 3339 UTC, e.g. `2026-11-28T02:31:31.123Z`.
pub fn rfc3339_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (the well-known era-based algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 section 4), all at once: the reference that
/// `Base64Encoder` is tested against.
#[cfg(test)]
pub fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 with padding (RFC 4648 section 4), fed in pieces of any length: the output
/// is the same as encoding the concatenation of the pieces at once. Up to two bytes of a
/// pending group are carried from one piece to the next; padding is written by `finish`.
#[derive(Debug, Default)]
pub struct Base64Encoder {
    pending: [u8; 2],
    pending_len: usize,
}

impl Base64Encoder {
    /// Appends the encoding of every whole 3-byte group that `data` completes to `out`.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        while self.pending_len > 0 && !data.is_empty() {
            if self.pending_len == 2 {
                let [a, b] = self.pending;
                push_group(out, [a, b, data[0]], 3);
                self.pending_len = 0;
            } else {
                self.pending[1] = data[0];
                self.pending_len = 2;
            }
            data = &data[1..];
        }
        let whole = data.len() / 3 * 3;
        out.reserve(whole / 3 * 4);
        for g in data[..whole].chunks_exact(3) {
            push_group(out, [g[0], g[1], g[2]], 3);
        }
        let rest = &data[whole..];
        if !rest.is_empty() {
            self.pending[..rest.len()].copy_from_slice(rest);
            self.pending_len = rest.len();
        }
    }

    /// Appends the last, padded group (if a partial one is pending) to `out`.
    pub fn finish(self, out: &mut Vec<u8>) {
        match self.pending_len {
            1 => push_group(out, [self.pending[0], 0, 0], 1),
            2 => push_group(out, [self.pending[0], self.pending[1], 0], 2),
            _ => {}
        }
    }
}

/// Appends the four characters encoding `b`, of which the first `len` bytes are data and the
/// rest padding.
fn push_group(out: &mut Vec<u8>, b: [u8; 3], len: usize) {
    let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
    for i in 0..4 {
        out.push(if i <= len {
            B64[((n >> (18 - 6 * i)) & 63) as usize]
        } else {
            b'='
        });
    }
}

/// Tells whether a byte stream fed in pieces of any length is valid UTF-8, carrying an
/// incomplete sequence at the end of one piece over to the next.
#[derive(Debug)]
pub struct Utf8Check {
    /// An incomplete sequence at the end of the data so far (at most 3 bytes), plus room for
    /// the byte that completes or breaks it.
    carry: [u8; 4],
    carry_len: usize,
    valid: bool,
}

impl Default for Utf8Check {
    fn default() -> Self {
        Utf8Check {
            carry: [0; 4],
            carry_len: 0,
            valid: true,
        }
    }
}

impl Utf8Check {
    /// Feeds the next piece; returns false once the stream so far cannot be valid UTF-8.
    pub fn feed(&mut self, mut data: &[u8]) -> bool {
        while self.valid && self.carry_len > 0 && !data.is_empty() {
            self.carry[self.carry_len] = data[0];
            self.carry_len += 1;
            data = &data[1..];
            match std::str::from_utf8(&self.carry[..self.carry_len]) {
                Ok(_) => self.carry_len = 0,
                // Still a prefix of a character (never 4 bytes: no character is longer).
                Err(e) if e.error_len().is_none() => {}
                Err(_) => self.valid = false,
            }
        }
        if !self.valid || data.is_empty() {
            return self.valid;
        }
        match std::str::from_utf8(data) {
            Ok(_) => {}
            Err(e) if e.error_len().is_none() => {
                let tail = &data[e.valid_up_to()..];
                self.carry[..tail.len()].copy_from_slice(tail);
                self.carry_len = tail.len();
            }
            Err(_) => self.valid = false,
        }
        self.valid
    }

    /// Whether the whole stream fed was valid UTF-8 (an incomplete last character is not).
    pub fn finish(&self) -> bool {
        self.valid && self.carry_len == 0
    }
}

/// Appends `data`, a piece of valid UTF-8, escaped for the inside of a JSON string exactly as
/// serde_json escapes it: `"` and `\` as `\"` and `\\`, and the control characters below
/// 0x20 as `\n`, `\r`, `\t`, `\b`, `\f` or `\u00XX`; every other byte, those of multibyte
/// characters included, passes unchanged. Working byte by byte, it may be fed a text split
/// anywhere, even inside a character.
pub fn json_escape_into(data: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(data.len());
    let mut start = 0;
    for (i, &b) in data.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..0x20 => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ],
            _ => continue,
        };
        out.extend_from_slice(&data[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&data[start..]);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_795_833_091_123), "2026-11-28T02:31:31.123Z");
        assert_eq!(
            rfc3339_us(1_795_833_091_123_999),
            "2026-11-28T02:31:31.123Z"
        );
        assert_eq!(rfc3339_ms(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn base64_rfc4648_vectors() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), enc);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    /// A small deterministic generator (xorshift64*), so that failures reproduce.
    pub(crate) struct Rng(u64);

    impl Rng {
        pub(crate) fn new(seed: u64) -> Rng {
            Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
        }
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Texts and byte strings that are hard on the encoders: every control character, quotes
    /// and backslashes, characters of 1 to 4 bytes, NUL, DEL, invalid and truncated sequences.
    pub(crate) fn samples(rng: &mut Rng) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = vec![
            vec![],
            b"\0".to_vec(),
            (0u8..0x80).collect(),
            (0u8..=255).collect(),
            "h\u{e9}llo \"w\u{f6}rld\"\n\t\\ \u{20ac} \u{1d11e} \u{7f} \u{2028}".into(),
            "\u{10ffff}\u{fffd}\u{feff}".into(),
            b"\xe2\x82".to_vec(),
            b"\xf0\x9d\x84".to_vec(),
            b"\xc3".to_vec(),
            b"ok \xed\xa0\x80 surrogate".to_vec(),
            b"\xc0\xaf overlong".to_vec(),
            b"\xf4\x90\x80\x80 too big".to_vec(),
            b"\x80 lone continuation".to_vec(),
        ];
        // Random texts from a small alphabet of awkward characters, and random bytes.
        let alphabet = [
            "a",
            " ",
            "\"",
            "\\",
            "\n",
            "\r",
            "\t",
            "\u{8}",
            "\u{c}",
            "\0",
            "\u{1f}",
            "\u{7f}",
            "\u{e9}",
            "\u{20ac}",
            "\u{1d11e}",
            "/",
            "\u{2028}",
        ];
        for _ in 0..200 {
            let len = rng.below(40);
            let text: String = (0..len)
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect();
            let mut bytes = text.into_bytes();
            if rng.below(3) == 0 && !bytes.is_empty() {
                // Break it: drop a byte, or put a random one somewhere.
                let at = rng.below(bytes.len());
                if rng.below(2) == 0 {
                    bytes.remove(at);
                } else {
                    bytes[at] = rng.next() as u8;
                }
            }
            v.push(bytes);
        }
        for _ in 0..100 {
            let len = rng.below(50);
            v.push((0..len).map(|_| rng.next() as u8).collect());
        }
        v
    }

    /// `data` cut into pieces: all of one length, or of random lengths (empty ones included).
    pub(crate) fn split<'a>(data: &'a [u8], rng: &mut Rng, piece: usize) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let n = if piece == 0 {
                rng.below(rest.len() + 2).min(rest.len())
            } else {
                piece.min(rest.len())
            };
            out.push(&rest[..n]);
            rest = &rest[n..];
        }
        out
    }

    #[test]
    fn base64_encoder_matches_base64_however_the_input_is_split() {
        let mut rng = Rng::new(1);
        for data in samples(&mut rng) {
            let want = base64(&data);
            for piece in [0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 64] {
                let mut enc = Base64Encoder::default();
                let mut out = Vec::new();
                for p in split(&data, &mut rng, piece) {
                    enc.feed(p, &mut out);
                }
                enc.finish(&mut out);
                assert_eq!(String::from_utf8(out).unwrap(), want, "{data:?} by {piece}");
            }
        }
    }

    #[test]
    fn utf8_check_agrees_with_from_utf8_however_the_input_is_split() {
        let mut rng = Rng::new(2);
        let mut valid = 0;
        for data in samples(&mut rng) {
            let want = std::str::from_utf8(&data).is_ok();
            valid += usize::from(want);
            for piece in [0, 0, 0, 1, 2, 3, 4, 5, 64] {
                let mut check = Utf8Check::default();
                let mut fed = true;
                for p in split(&data, &mut rng, piece) {
                    fed &= check.feed(p);
                }
                assert_eq!(check.finish(), want, "{data:?} by {piece}");
                // `feed` says false only for what no continuation can make valid.
                if want {
                    assert!(fed, "{data:?} by {piece}");
                }
            }
        }
        assert!(valid > 50, "too few valid samples: {valid}");
        // An incomplete character is not rejected until the end.
        let mut check = Utf8Check::default();
        assert!(check.feed(b"ab\xf0\x9d"));
        assert!(!check.finish());
        assert!(check.feed(b"\x84"));
        assert!(check.feed(b"\x9e"));
        assert!(check.finish());
    }

    #[test]
    fn json_escape_matches_serde_json_however_the_input_is_split() {
        let mut rng = Rng::new(3);
        let mut every: Vec<u8> = (0u8..0x80).collect();
        every.extend("\u{80}\u{7ff}\u{800}\u{ffff}\u{10000}\u{10ffff}".bytes());
        let mut texts = vec![every];
        texts.extend(
            samples(&mut rng)
                .into_iter()
                .filter(|b| std::str::from_utf8(b).is_ok()),
        );
        for data in texts {
            let quoted = serde_json::to_string(std::str::from_utf8(&data).unwrap()).unwrap();
            let want = &quoted[1..quoted.len() - 1];
            for piece in [0, 0, 0, 1, 2, 3, 5, 64] {
                let mut out = Vec::new();
                for p in split(&data, &mut rng, piece) {
                    json_escape_into(p, &mut out);
                }
                assert_eq!(String::from_utf8(out).unwrap(), want, "{data:?} by {piece}");
            }
        }
    }
}
