//! The built-in detectors: a candidate regex each, a cheap prefilter that
//! skips text which cannot contain a match, and a validator that decides
//! whether a candidate is really the thing (checksums, ranges, boundaries).

use std::net::Ipv6Addr;
use std::ops::Range;

use memchr::memmem;
use regex::Regex;

use super::DetectorKind;

/// Character counts of a text, taken once per scan, that let detectors
/// skip text which cannot hold a match.
#[derive(Debug, Default)]
pub(super) struct Profile {
    digits: usize,
    uppercase: usize,
    at_signs: usize,
    colons: usize,
    dots: usize,
    dashes: usize,
}

impl Profile {
    pub(super) fn of(text: &[u8]) -> Profile {
        let mut profile = Profile::default();
        for &b in text {
            match b {
                b'0'..=b'9' => profile.digits += 1,
                b'A'..=b'Z' => profile.uppercase += 1,
                b'@' => profile.at_signs += 1,
                b':' => profile.colons += 1,
                b'.' => profile.dots += 1,
                b'-' => profile.dashes += 1,
                _ => {}
            }
        }
        profile
    }
}

pub(super) struct Builtin {
    kind: DetectorKind,
    regex: Regex,
}

impl Builtin {
    pub(super) fn new(kind: DetectorKind) -> Builtin {
        let pattern = match kind {
            DetectorKind::Email => {
                r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}"
            }
            DetectorKind::Phone => concat!(
                r"\+[1-9][0-9]{0,14}(?:[ .\-]?\([0-9]{1,4}\))?(?:[ .\-][0-9]{1,5}){0,6}",
                r"|\([0-9]{3}\) ?[0-9]{3}[\-. ][0-9]{4}",
                r"|[0-9]{3}[\-.][0-9]{3}[\-.][0-9]{4}",
            ),
            DetectorKind::PaymentCard => r"[0-9](?:[ \-]?[0-9]){12,18}",
            DetectorKind::UsSsn => r"[0-9]{3}-[0-9]{2}-[0-9]{4}|[0-9]{3} [0-9]{2} [0-9]{4}",
            DetectorKind::Iban => concat!(
                r"[A-Z]{2}[0-9]{2}(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?",
                r"|[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}",
            ),
            DetectorKind::Ipv4 => r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}",
            DetectorKind::Ipv6 => r"[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*",
            DetectorKind::Jwt => r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*",
            DetectorKind::AwsAccessKey => {
                r"(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z2-7]{16}"
            }
            DetectorKind::PrivateKey => {
                r"(?s)-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"
            }
        };
        Builtin {
            kind,
            regex: Regex::new(pattern).expect("built-in pattern compiles"),
        }
    }

    /// Calls `found` with each validated match, in order.
    pub(super) fn find(&self, text: &str, profile: &Profile, mut found: impl FnMut(Range<usize>)) {
        if !self.may_match(text.as_bytes(), profile) {
            return;
        }
        let bytes = text.as_bytes();
        for candidate in self.regex.find_iter(text) {
            if let Some(range) = self.validate(bytes, candidate.range()) {
                found(range);
            }
        }
    }

    /// Cheap tests that rule out most text before any regex runs.
    fn may_match(&self, text: &[u8], profile: &Profile) -> bool {
        match self.kind {
            DetectorKind::Email => profile.at_signs > 0,
            DetectorKind::Ipv6 => profile.colons >= 2,
            DetectorKind::Jwt => {
                profile.dots >= 2 && profile.uppercase >= 1 && memmem::find(text, b"eyJ").is_some()
            }
            DetectorKind::PrivateKey => {
                profile.dashes >= 20 && memmem::find(text, b"PRIVATE KEY-----").is_some()
            }
            DetectorKind::AwsAccessKey => profile.uppercase >= 4 && text.len() >= 20,
            DetectorKind::Phone => profile.digits >= 8,
            DetectorKind::PaymentCard => profile.digits >= 13,
            DetectorKind::UsSsn => profile.digits >= 9,
            DetectorKind::Iban => profile.digits >= 2 && profile.uppercase >= 2,
            DetectorKind::Ipv4 => profile.digits >= 4 && profile.dots >= 3,
        }
    }

    fn validate(&self, text: &[u8], range: Range<usize>) -> Option<Range<usize>> {
        let candidate = &text[range.clone()];
        let ok = match self.kind {
            DetectorKind::Email => email(candidate) && !text_after(text, &range, is_word),
            DetectorKind::Phone => phone(candidate) && bounded_number(text, &range),
            DetectorKind::PaymentCard => return payment_card(text, range),
            DetectorKind::UsSsn => ssn(candidate) && bounded_number(text, &range),
            DetectorKind::Iban => iban(candidate) && bounded_word(text, &range),
            DetectorKind::Ipv4 => ipv4(candidate) && bounded_number(text, &range),
            DetectorKind::Ipv6 => return ipv6(text, range),
            DetectorKind::Jwt => {
                jwt(candidate)
                    && !text_before(text, &range, |b| is_base64url(b) || b == b'.')
                    && !text_after(text, &range, |b| is_base64url(b) || b == b'.')
            }
            DetectorKind::AwsAccessKey => bounded_word(text, &range),
            DetectorKind::PrivateKey => true,
        };
        ok.then_some(range)
    }
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn text_before(text: &[u8], range: &Range<usize>, test: impl Fn(u8) -> bool) -> bool {
    range.start > 0 && test(text[range.start - 1])
}

fn text_after(text: &[u8], range: &Range<usize>, test: impl Fn(u8) -> bool) -> bool {
    text.get(range.end).is_some_and(|&b| test(b))
}

/// Not glued to letters or digits on either side, and not one piece of a
/// longer dotted or dashed number (`1.2.3.4.5`, `ORD-2024-…`, `12.5`).
fn bounded_number(text: &[u8], range: &Range<usize>) -> bool {
    let before_ok = !text_before(text, range, |b| {
        is_word(b) || matches!(b, b'.' | b'-' | b'+' | b'/')
    });
    let after = text.get(range.end).copied();
    let after_ok = match after {
        None => true,
        Some(b) if is_word(b) => false,
        Some(b'.' | b'-' | b',' | b'/') => !text.get(range.end + 1).is_some_and(u8::is_ascii_digit),
        Some(_) => true,
    };
    before_ok && after_ok
}

fn bounded_word(text: &[u8], range: &Range<usize>) -> bool {
    !text_before(text, range, is_word) && !text_after(text, range, is_word)
}

/// Generic TLDs common enough to be worth recognising; any two-letter TLD is
/// taken as a country code.
const TLDS: &[&str] = &[
    "com",
    "org",
    "net",
    "edu",
    "gov",
    "mil",
    "int",
    "info",
    "biz",
    "name",
    "pro",
    "mobi",
    "aero",
    "coop",
    "museum",
    "travel",
    "jobs",
    "asia",
    "tel",
    "app",
    "dev",
    "cloud",
    "online",
    "site",
    "tech",
    "email",
    "xyz",
    "shop",
    "store",
    "blog",
    "page",
    "live",
    "life",
    "news",
    "work",
    "company",
    "email",
    "digital",
    "network",
    "systems",
    "solutions",
    "agency",
    "media",
    "global",
    "world",
    "today",
    "local",
    "health",
    "bank",
    "insurance",
    "finance",
    "law",
    "legal",
];

fn email(candidate: &[u8]) -> bool {
    let Some(at) = memchr::memchr(b'@', candidate) else {
        return false;
    };
    let (local, domain) = (&candidate[..at], &candidate[at + 1..]);
    let tld = &domain[memchr::memrchr(b'.', domain).map_or(0, |d| d + 1)..];
    let plausible_tld =
        tld.len() == 2 || TLDS.iter().any(|t| t.as_bytes().eq_ignore_ascii_case(tld));
    !local.is_empty()
        && local.len() <= 64
        && local[0] != b'.'
        && local[local.len() - 1] != b'.'
        && memmem::find(local, b"..").is_none()
        && plausible_tld
}

fn digit_count(candidate: &[u8]) -> usize {
    candidate.iter().filter(|b| b.is_ascii_digit()).count()
}

fn phone(candidate: &[u8]) -> bool {
    let digits = digit_count(candidate);
    if candidate[0] == b'+' {
        return (8..=15).contains(&digits);
    }
    if digits != 10 {
        return false;
    }
    // `555-123-4567` and `555.123.4567`, but not `555-123.4567`.
    if candidate[0] != b'(' && candidate[3] != candidate[7] {
        return false;
    }
    true
}

fn payment_card(text: &[u8], range: Range<usize>) -> Option<Range<usize>> {
    let candidate = &text[range.clone()];
    let separator = candidate.iter().copied().find(|b| !b.is_ascii_digit());
    let grouped_ok = separator.is_none_or(|sep| {
        candidate.iter().all(|&b| b.is_ascii_digit() || b == sep)
            && candidate.split(|&b| b == sep).enumerate().all(|(i, g)| {
                if i == 0 {
                    g.len() == 4
                } else {
                    (3..=6).contains(&g.len())
                }
            })
    });
    let range = if grouped_ok {
        range
    } else {
        // `4111111111111111 12` read as one run: retry the first group alone.
        let first = candidate.iter().take_while(|b| b.is_ascii_digit()).count();
        range.start..range.start + first
    };
    // The regex allows at most 19 digits.
    let mut digits = [0u8; 19];
    let mut len = 0;
    for &b in text[range.clone()].iter().filter(|b| b.is_ascii_digit()) {
        digits[len] = b - b'0';
        len += 1;
    }
    let digits = &digits[..len];
    // Ungrouped 17–19 digit runs are far more often bigint ids (int8 has 19
    // digits) than the rare long card numbers; those count only when grouped.
    let grouped = range.len() != len;
    let plausible_length = grouped || len <= 16;
    (plausible_length && card_prefix(digits) && luhn(digits) && bounded_number(text, &range))
        .then_some(range)
}

/// Known issuer prefixes and the lengths they issue.
fn card_prefix(d: &[u8]) -> bool {
    let len = d.len();
    if !(13..=19).contains(&len) {
        return false;
    }
    let two = d[0] * 10 + d[1];
    match d[0] {
        3 => match two {
            34 | 37 => len == 15,
            30 | 36 | 38 | 39 => len == 14 || len == 16,
            35 => (16..=19).contains(&len),
            _ => false,
        },
        4 => matches!(len, 13 | 16 | 19),
        5 => (51..=55).contains(&two) && len == 16,
        6 => (two == 60 || two == 62 || two == 64 || two == 65) && (16..=19).contains(&len),
        _ => false,
    }
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

fn ssn(candidate: &[u8]) -> bool {
    let num = |r: Range<usize>| {
        candidate[r]
            .iter()
            .fold(0u32, |n, b| n * 10 + u32::from(b - b'0'))
    };
    let (area, group, serial) = (num(0..3), num(4..6), num(7..11));
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// IBAN lengths by country (ISO 13616 registry, common countries).
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BR", 29),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NL", 18),
    (b"NO", 15),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"SA", 24),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VG", 24),
    (b"XK", 20),
];

fn iban(candidate: &[u8]) -> bool {
    let compact: Vec<u8> = candidate.iter().copied().filter(|&b| b != b' ').collect();
    let Some(&(_, expected)) = IBAN_LENGTHS.iter().find(|(cc, _)| cc[..] == compact[..2]) else {
        return false;
    };
    if compact.len() != expected {
        return false;
    }
    // Move the country and check digits to the end, letters become 10..35.
    let mut rem = 0u32;
    for &b in compact[4..].iter().chain(&compact[..4]) {
        let v = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b - b'A') + 10
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// Four octets 0–255 without leading zeros. All-single-digit quads
/// (`1.2.3.4`) are taken as version numbers: the addresses they exclude
/// (`8.8.8.8`, `1.1.1.1`) are public resolvers, not anyone's address.
fn ipv4(candidate: &[u8]) -> bool {
    if candidate.len() == 7 {
        return false;
    }
    candidate.split(|&b| b == b'.').all(|octet| {
        let leading_zero = octet.len() > 1 && octet[0] == b'0';
        let value = octet.iter().fold(0u32, |n, b| n * 10 + u32::from(b - b'0'));
        !leading_zero && value <= 255
    })
}

fn ipv6(text: &[u8], range: Range<usize>) -> Option<Range<usize>> {
    let (mut start, mut end) = (range.start, range.end);
    while end > start && text[end - 1] == b'.' {
        end -= 1;
    }
    if end - start >= 2 && text[end - 1] == b':' && text[end - 2] != b':' {
        end -= 1;
    }
    if end - start >= 2 && text[start] == b':' && text[start + 1] != b':' {
        start += 1;
    }
    let candidate = &text[start..end];
    let colons = candidate.iter().filter(|&&b| b == b':').count();
    let hex_digits = candidate.iter().filter(|b| b.is_ascii_hexdigit()).count();
    let shaped = (memmem::find(candidate, b"::").is_some() || colons >= 7) && hex_digits >= 4;
    let range = start..end;
    let parses = std::str::from_utf8(candidate)
        .ok()
        .is_some_and(|s| s.parse::<Ipv6Addr>().is_ok());
    (shaped && parses && bounded_word(text, &range)).then_some(range)
}

fn jwt(candidate: &[u8]) -> bool {
    let header = &candidate[..memchr::memchr(b'.', candidate).unwrap_or(candidate.len())];
    decode_base64url(header).is_some_and(|json| {
        json.first() == Some(&b'{') && memmem::find(&json, b"\"alg\"").is_some()
    })
}

fn decode_base64url(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for &b in input {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}
