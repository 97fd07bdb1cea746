//! Content detectors: finding personal data and secrets inside free text, so
//! columns the policy could not name in advance (notes, JSON blobs, error
//! messages) are still masked. Each built-in pairs a candidate regex with a
//! validator (checksums, ranges, boundaries) to keep ids, order numbers,
//! timestamps and versions from being mistaken for PII.

mod builtin;
#[cfg(test)]
mod false_positives;

use std::ops::Range;

use bytes::BytesMut;
use regex::Regex;
use serde::Deserialize;

use crate::strategy::{mask_text, MaskKey, Strategy};
use crate::MaskError;

/// The built-in detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    Email,
    Phone,
    PaymentCard,
    UsSsn,
    Iban,
    Ipv4,
    Ipv6,
    Jwt,
    AwsAccessKey,
    PrivateKey,
}

impl DetectorKind {
    /// Every built-in, in a stable order.
    pub const ALL: [DetectorKind; 10] = [
        DetectorKind::Email,
        DetectorKind::Phone,
        DetectorKind::PaymentCard,
        DetectorKind::UsSsn,
        DetectorKind::Iban,
        DetectorKind::Ipv4,
        DetectorKind::Ipv6,
        DetectorKind::Jwt,
        DetectorKind::AwsAccessKey,
        DetectorKind::PrivateKey,
    ];

    /// The name used in configuration and audit records.
    pub fn name(self) -> &'static str {
        match self {
            DetectorKind::Email => "email",
            DetectorKind::Phone => "phone",
            DetectorKind::PaymentCard => "payment_card",
            DetectorKind::UsSsn => "us_ssn",
            DetectorKind::Iban => "iban",
            DetectorKind::Ipv4 => "ipv4",
            DetectorKind::Ipv6 => "ipv6",
            DetectorKind::Jwt => "jwt",
            DetectorKind::AwsAccessKey => "aws_access_key",
            DetectorKind::PrivateKey => "private_key",
        }
    }
}

/// What a detector looks for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorPattern {
    Builtin(DetectorKind),
    /// A custom detector: every match of `pattern` (Rust `regex` syntax).
    Regex {
        name: String,
        pattern: String,
    },
}

/// One detector and how its matches are masked.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DetectorSpec {
    pub pattern: DetectorPattern,
    pub strategy: Strategy,
}

impl DetectorSpec {
    pub fn builtin(kind: DetectorKind, strategy: Strategy) -> DetectorSpec {
        DetectorSpec {
            pattern: DetectorPattern::Builtin(kind),
            strategy,
        }
    }
}

/// A detected span: byte range into the scanned text and the index of the
/// detector (in the order of the specs given to [`Detectors::new`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub range: Range<usize>,
    pub detector: usize,
}

enum Matcher {
    Builtin(builtin::Builtin),
    Custom(Regex),
}

struct Detector {
    name: String,
    strategy: Strategy,
    matcher: Matcher,
}

/// A compiled set of detectors; build once per configuration and share
/// through an `Arc`.
pub struct Detectors {
    detectors: Vec<Detector>,
}

impl std::fmt::Debug for Detectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.detectors.iter().map(|d| &d.name))
            .finish()
    }
}

impl Detectors {
    /// Compiles the specs; fails only on a custom pattern that does not compile.
    pub fn new(specs: Vec<DetectorSpec>) -> Result<Detectors, MaskError> {
        let detectors = specs
            .into_iter()
            .map(|spec| {
                let (name, matcher) = match spec.pattern {
                    DetectorPattern::Builtin(kind) => (
                        kind.name().to_owned(),
                        Matcher::Builtin(builtin::Builtin::new(kind)),
                    ),
                    DetectorPattern::Regex { name, pattern } => match Regex::new(&pattern) {
                        Ok(regex) => (name, Matcher::Custom(regex)),
                        Err(source) => {
                            return Err(MaskError::Pattern {
                                name,
                                source: Box::new(source),
                            })
                        }
                    },
                };
                Ok(Detector {
                    name,
                    strategy: spec.strategy,
                    matcher,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Detectors { detectors })
    }

    /// No detectors: scans find nothing.
    pub fn none() -> Detectors {
        Detectors {
            detectors: Vec::new(),
        }
    }

    /// Every built-in detector with one strategy.
    pub fn all_builtin(strategy: Strategy) -> Detectors {
        let specs = DetectorKind::ALL
            .iter()
            .map(|&kind| DetectorSpec::builtin(kind, strategy))
            .collect();
        Detectors::new(specs).expect("built-in patterns compile")
    }

    pub fn is_empty(&self) -> bool {
        self.detectors.is_empty()
    }

    /// The name of detector `index` (a built-in's name or the custom name).
    pub fn name(&self, index: usize) -> &str {
        &self.detectors[index].name
    }

    /// The strategy of detector `index`.
    pub fn strategy(&self, index: usize) -> Strategy {
        self.detectors[index].strategy
    }

    /// Non-overlapping detections, leftmost first; on overlap the longer
    /// span wins, then the earlier detector.
    pub fn find(&self, text: &str) -> Vec<Span> {
        let mut spans = Vec::new();
        self.find_into(text, &mut spans);
        spans
    }

    /// [`Detectors::find`] into a reused buffer (cleared first).
    pub fn find_into(&self, text: &str, spans: &mut Vec<Span>) {
        spans.clear();
        let profile = builtin::Profile::of(text.as_bytes());
        for (index, detector) in self.detectors.iter().enumerate() {
            match &detector.matcher {
                Matcher::Builtin(builtin) => builtin.find(text, &profile, |range| {
                    spans.push(Span {
                        range,
                        detector: index,
                    })
                }),
                Matcher::Custom(regex) => spans.extend(
                    regex
                        .find_iter(text)
                        .filter(|m| !m.is_empty())
                        .map(|m| Span {
                            range: m.range(),
                            detector: index,
                        }),
                ),
            }
        }
        if spans.len() > 1 {
            spans.sort_by(|a, b| {
                (a.range.start, b.range.end, a.detector).cmp(&(
                    b.range.start,
                    a.range.end,
                    b.detector,
                ))
            });
            let mut end = 0;
            spans.retain(|span| {
                let keep = span.range.start >= end;
                if keep {
                    end = span.range.end;
                }
                keep
            });
        }
    }

    /// Writes `text` with `spans` (from [`Detectors::find_into`] on the same
    /// text) masked by their detectors' strategies. `Null` masks as Redact:
    /// a span inside text cannot be NULL.
    pub fn mask_spans(&self, text: &[u8], spans: &[Span], key: &MaskKey, out: &mut BytesMut) {
        let mut at = 0;
        out.reserve(text.len());
        for span in spans {
            out.extend_from_slice(&text[at..span.range.start]);
            mask_text(
                self.strategy(span.detector),
                key,
                &text[span.range.clone()],
                out,
            );
            at = span.range.end;
        }
        out.extend_from_slice(&text[at..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(kind: DetectorKind, text: &str) -> Vec<String> {
        let detectors =
            Detectors::new(vec![DetectorSpec::builtin(kind, Strategy::Redact)]).unwrap();
        detectors
            .find(text)
            .into_iter()
            .map(|s| text[s.range].to_owned())
            .collect()
    }

    fn hits(kind: DetectorKind, text: &str, expected: &[&str]) {
        assert_eq!(detect(kind, text), expected, "{kind:?} in {text:?}");
    }

    #[test]
    fn email() {
        use DetectorKind::Email as E;
        hits(
            E,
            "mail jane.doe+x@example.co.uk now",
            &["jane.doe+x@example.co.uk"],
        );
        hits(
            E,
            "<a.b@corp.example.com>, c@d.io",
            &["a.b@corp.example.com", "c@d.io"],
        );
        hits(E, "user@localhost", &[]);
        hits(E, "x@y.notatld", &[]);
        hits(E, "git@github.com:owner/repo", &["git@github.com"]);
        hits(E, "a..b@example.com", &[]);
        hits(E, "@example.com", &[]);
    }

    #[test]
    fn phone() {
        use DetectorKind::Phone as P;
        hits(P, "call +14155552671 today", &["+14155552671"]);
        hits(P, "(555) 123-4567", &["(555) 123-4567"]);
        hits(P, "tel 555-123-4567.", &["555-123-4567"]);
        hits(P, "+44 20 7946 0958", &["+44 20 7946 0958"]);
        hits(P, "+1 (415) 555-2671", &["+1 (415) 555-2671"]);
        hits(P, "id 5551234567 and 123456789", &[]);
        hits(P, "+1234567", &[]);
        hits(P, "ORD-2024-000123", &[]);
        hits(P, "2024-03-05 12:34:56.789+00", &[]);
    }

    #[test]
    fn payment_card() {
        use DetectorKind::PaymentCard as C;
        hits(C, "card 4111111111111111 ok", &["4111111111111111"]);
        hits(C, "4111 1111 1111 1111", &["4111 1111 1111 1111"]);
        hits(C, "5500-0000-0000-0004", &["5500-0000-0000-0004"]);
        hits(C, "amex 378282246310005", &["378282246310005"]);
        hits(C, "6011111111111117", &["6011111111111117"]);
        // 19 digits count only when grouped: ungrouped they are bigint ids.
        hits(C, "4111 1111 1111 1111 102", &["4111 1111 1111 1111 102"]);
        hits(C, "4111111111111111102", &[]);
        // Luhn-invalid, unknown prefix, mixed separators, part of a longer number.
        hits(C, "4111111111111112", &[]);
        hits(C, "1111111111111117", &[]);
        hits(C, "4111 1111-1111 1111", &[]);
        hits(C, "94111111111111111", &[]);
        hits(C, "4111111111111111.5", &[]);
    }

    #[test]
    fn us_ssn() {
        use DetectorKind::UsSsn as S;
        hits(S, "ssn 123-45-6789.", &["123-45-6789"]);
        hits(S, "123 45 6789", &["123 45 6789"]);
        hits(S, "000-12-3456 666-12-3456 912-12-3456", &[]);
        hits(S, "123-00-4567 123-45-0000", &[]);
        hits(S, "123456789", &[]);
        hits(S, "123-45 6789", &[]);
        hits(S, "1123-45-6789 123-45-67890", &[]);
    }

    #[test]
    fn iban() {
        use DetectorKind::Iban as I;
        hits(
            I,
            "pay DE89370400440532013000 now",
            &["DE89370400440532013000"],
        );
        hits(
            I,
            "GB29 NWBK 6016 1331 9268 19",
            &["GB29 NWBK 6016 1331 9268 19"],
        );
        hits(
            I,
            "FR1420041010050500013M02606",
            &["FR1420041010050500013M02606"],
        );
        hits(I, "DE88370400440532013000", &[]);
        hits(I, "DE8937040044053201300", &[]);
        hits(I, "XX89370400440532013000", &[]);
    }

    #[test]
    fn ipv4() {
        use DetectorKind::Ipv4 as V;
        hits(
            V,
            "from 192.168.1.20, to 10.0.0.1.",
            &["192.168.1.20", "10.0.0.1"],
        );
        hits(V, "256.1.1.1 1.2.3 01.2.3.4", &[]);
        hits(V, "version 1.2.3.4.5 and v1.2.3.4", &[]);
        hits(V, "release 1.2.3.4, resolver 8.8.8.8", &[]);
        hits(V, "10.0.0.1 1.2.3.40", &["10.0.0.1", "1.2.3.40"]);
        hits(V, "host=10.1.2.3:5432", &["10.1.2.3"]);
    }

    #[test]
    fn ipv6() {
        use DetectorKind::Ipv6 as V;
        hits(V, "peer 2001:db8::1 up", &["2001:db8::1"]);
        hits(
            V,
            "[fe80::1ff:fe23:4567:890a]:80",
            &["fe80::1ff:fe23:4567:890a"],
        );
        hits(
            V,
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            &["2001:0db8:85a3:0000:0000:8a2e:0370:7334"],
        );
        hits(V, "::ffff:192.0.2.1", &["::ffff:192.0.2.1"]);
        hits(V, "12:34:56.789 00:1a:2b:3c:4d:5e std::fmt a::b", &[]);
    }

    #[test]
    fn jwt() {
        use DetectorKind::Jwt as J;
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        hits(J, &format!("Bearer {token}"), &[token]);
        // Header without "alg".
        hits(J, "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.abc", &[]);
        hits(J, "eyJhbGciOiJIUzI1NiJ9", &[]);
    }

    #[test]
    fn aws_access_key() {
        use DetectorKind::AwsAccessKey as A;
        hits(A, "key=AKIAIOSFODNN7EXAMPLE;", &["AKIAIOSFODNN7EXAMPLE"]);
        hits(A, "ASIAY34FZKBOKMUTVV7A", &["ASIAY34FZKBOKMUTVV7A"]);
        hits(A, "AKIAIOSFODNN7EXAMPLEX AKIAIOSFODNN7EXAMP1E", &[]);
    }

    #[test]
    fn private_key() {
        use DetectorKind::PrivateKey as K;
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAK\n-----END RSA PRIVATE KEY-----";
        hits(K, &format!("key: {pem}\nrest"), &[pem]);
        let pem = "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----";
        hits(K, pem, &[pem]);
        hits(
            K,
            "-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----",
            &[],
        );
        hits(K, "-----BEGIN PRIVATE KEY-----\nabc", &[]);
    }

    #[test]
    fn custom_and_overlaps() {
        let detectors = Detectors::new(vec![
            DetectorSpec::builtin(DetectorKind::Email, Strategy::EmailDomain),
            DetectorSpec {
                pattern: DetectorPattern::Regex {
                    name: "employee".into(),
                    pattern: r"EMP-[0-9]{6}".into(),
                },
                strategy: Strategy::KeepLast(2),
            },
            DetectorSpec {
                pattern: DetectorPattern::Regex {
                    name: "word".into(),
                    pattern: r"jane".into(),
                },
                strategy: Strategy::Redact,
            },
        ])
        .unwrap();
        let text = "jane@example.com is EMP-123456";
        let spans = detectors.find(text);
        assert_eq!(spans.len(), 2);
        assert_eq!(detectors.name(spans[0].detector), "email");
        let mut out = BytesMut::new();
        let key = MaskKey::new(&[3; 32]).unwrap();
        detectors.mask_spans(text.as_bytes(), &spans, &key, &mut out);
        assert_eq!(&out[..], b"****@example.com is ********56");

        let bad = Detectors::new(vec![DetectorSpec {
            pattern: DetectorPattern::Regex {
                name: "broken".into(),
                pattern: "(".into(),
            },
            strategy: Strategy::Redact,
        }]);
        assert!(matches!(bad, Err(MaskError::Pattern { name, .. }) if name == "broken"));
    }
}
