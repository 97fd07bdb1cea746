//! Reading a client's text as the server reads it: in the session's
//! `client_encoding`, converted to the server's UTF-8.
//!
//! Vigil follows only the encodings in which every byte below 0x80 is the
//! ASCII character it looks like and every byte of a multibyte character is
//! 0x80 or above (UTF8, SQL_ASCII, the LATIN and WIN sets, KOI8, ISO 8859,
//! EUC_JP, EUC_KR, EUC_CN): in them the quotes, backslashes and semicolons
//! that decide where a statement starts and ends are the same bytes whatever
//! the encoding, so reading the rest in the wrong one could change a literal
//! but never the statements. The client-only encodings (SJIS, BIG5, GBK,
//! UHC, GB18030, JOHAB) put ASCII bytes inside characters and are refused
//! elsewhere (`vigil.parser-integrity`).

use std::borrow::Cow;

/// A session's client encoding, as far as Vigil can decode it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientEncoding {
    /// The name as the server reports it (`UTF8`, `LATIN1` …).
    name: String,
    decoder: Decoder,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decoder {
    /// UTF8, and SQL_ASCII (passed through, checked as the server's UTF-8).
    Utf8,
    /// ISO 8859-1: each byte is the code point of the same number.
    Latin1,
    /// ISO 8859-9: Windows-1254 but for C1 controls at 0x80–0x9F.
    Latin5,
    Table(&'static encoding_rs::Encoding),
    /// Known to keep ASCII bytes ASCII, but not decoded by Vigil: only
    /// texts of ASCII alone are read.
    AsciiOnly,
}

/// Why a text could not be read as the server would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unreadable {
    /// The bytes are not valid in the encoding.
    Invalid { encoding: String },
    /// Vigil does not decode this encoding's non-ASCII characters.
    Undecoded { encoding: String },
}

impl ClientEncoding {
    pub(crate) fn utf8() -> ClientEncoding {
        ClientEncoding {
            name: "UTF8".into(),
            decoder: Decoder::Utf8,
        }
    }

    /// The encoding PostgreSQL calls `name`; `None` for one that Vigil
    /// does not follow (a client-only encoding, or an unknown name).
    pub(crate) fn named(name: &str) -> Option<ClientEncoding> {
        use encoding_rs as e;
        let clean: String = name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let decoder = match clean.as_str() {
            "utf8" | "unicode" | "sqlascii" => Decoder::Utf8,
            "latin1" | "iso88591" => Decoder::Latin1,
            "latin2" | "iso88592" => Decoder::Table(e::ISO_8859_2),
            "latin3" | "iso88593" => Decoder::Table(e::ISO_8859_3),
            "latin4" | "iso88594" => Decoder::Table(e::ISO_8859_4),
            "latin5" | "iso88599" => Decoder::Latin5,
            "latin6" | "iso885910" => Decoder::Table(e::ISO_8859_10),
            "latin7" | "iso885913" => Decoder::Table(e::ISO_8859_13),
            "latin8" | "iso885914" => Decoder::Table(e::ISO_8859_14),
            "latin9" | "iso885915" => Decoder::Table(e::ISO_8859_15),
            "latin10" | "iso885916" => Decoder::Table(e::ISO_8859_16),
            "iso88595" => Decoder::Table(e::ISO_8859_5),
            "iso88596" => Decoder::Table(e::ISO_8859_6),
            "iso88597" => Decoder::Table(e::ISO_8859_7),
            "iso88598" => Decoder::Table(e::ISO_8859_8),
            "win866" | "alt" => Decoder::Table(e::IBM866),
            "win874" => Decoder::Table(e::WINDOWS_874),
            "win1250" => Decoder::Table(e::WINDOWS_1250),
            "win1251" | "win" => Decoder::Table(e::WINDOWS_1251),
            "win1252" => Decoder::Table(e::WINDOWS_1252),
            "win1253" => Decoder::Table(e::WINDOWS_1253),
            "win1254" => Decoder::Table(e::WINDOWS_1254),
            "win1255" => Decoder::Table(e::WINDOWS_1255),
            "win1256" => Decoder::Table(e::WINDOWS_1256),
            "win1257" => Decoder::Table(e::WINDOWS_1257),
            "win1258" | "abc" | "tcvn" | "tcvn5712" => Decoder::Table(e::WINDOWS_1258),
            "koi8" | "koi8r" => Decoder::Table(e::KOI8_R),
            "koi8u" => Decoder::Table(e::KOI8_U),
            "eucjp" => Decoder::Table(e::EUC_JP),
            "euckr" => Decoder::Table(e::EUC_KR),
            "euccn" => Decoder::Table(e::GBK),
            "euctw" | "eucjis2004" | "muleinternal" => Decoder::AsciiOnly,
            _ => return None,
        };
        Some(ClientEncoding {
            name: name.to_owned(),
            decoder,
        })
    }

    /// The name as the server reports it.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn is_utf8(&self) -> bool {
        self.decoder == Decoder::Utf8
    }

    /// `bytes` as the server reads them, in UTF-8.
    pub(crate) fn decode<'a>(&self, bytes: &'a [u8]) -> Result<Cow<'a, str>, Unreadable> {
        if let Ok(text) = std::str::from_utf8(bytes) {
            if text.is_ascii() || self.decoder == Decoder::Utf8 {
                return Ok(Cow::Borrowed(text));
            }
        }
        let invalid = || Unreadable::Invalid {
            encoding: self.name.clone(),
        };
        let decoded: String = match self.decoder {
            Decoder::Utf8 => return Err(invalid()),
            Decoder::Latin1 => bytes.iter().map(|&b| char::from(b)).collect(),
            Decoder::Latin5 => {
                let (text, _, bad) = encoding_rs::WINDOWS_1254.decode(bytes);
                if bad {
                    return Err(invalid());
                }
                // The C1 range is the one place Windows-1254 and ISO 8859-9 differ.
                text.chars()
                    .zip(bytes)
                    .map(|(c, &b)| match b {
                        0x80..=0x9f => char::from(b),
                        _ => c,
                    })
                    .collect()
            }
            Decoder::Table(encoding) => {
                let (text, bad) = encoding.decode_without_bom_handling(bytes);
                if bad {
                    return Err(invalid());
                }
                text.into_owned()
            }
            Decoder::AsciiOnly => {
                return Err(Unreadable::Undecoded {
                    encoding: self.name.clone(),
                })
            }
        };
        // The promise this module rests on: the ASCII of the text is the
        // ASCII of the bytes, in order. A decoder that ate or made up an
        // ASCII character would let the two readings part.
        let ascii_in = bytes.iter().copied().filter(u8::is_ascii);
        let ascii_out = decoded.bytes().filter(u8::is_ascii);
        if !ascii_in.eq(ascii_out) {
            return Err(invalid());
        }
        Ok(Cow::Owned(decoded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_read_as_the_server_converts_them() {
        let latin1 = ClientEncoding::named("LATIN1").unwrap();
        assert_eq!(latin1.decode(b"SELECT 'caf\xe9'").unwrap(), "SELECT 'café'");
        // Valid UTF-8 is still read as LATIN1: two characters, as the server sees them.
        assert_eq!(
            latin1.decode("SELECT 'é'".as_bytes()).unwrap(),
            "SELECT 'Ã©'"
        );
        assert_eq!(latin1.decode(b"\x85").unwrap(), "\u{85}");
        let latin5 = ClientEncoding::named("LATIN5").unwrap();
        assert_eq!(latin5.decode(b"\xfd\x80").unwrap(), "ı\u{80}");
        let win1251 = ClientEncoding::named("WIN1251").unwrap();
        assert_eq!(win1251.decode(b"'\xcf\xf0'").unwrap(), "'Пр'");
        let euc_jp = ClientEncoding::named("EUC_JP").unwrap();
        assert_eq!(euc_jp.decode(b"'\xa4\xa2'").unwrap(), "'あ'");
        let utf8 = ClientEncoding::utf8();
        assert_eq!(utf8.decode("'é'".as_bytes()).unwrap(), "'é'");
        assert!(utf8.decode(b"'\xe9'").is_err());
    }

    #[test]
    fn encodings_that_hide_ascii_are_not_followed() {
        for name in ["SJIS", "BIG5", "GBK", "UHC", "GB18030", "JOHAB", "no such"] {
            assert!(ClientEncoding::named(name).is_none(), "{name}");
        }
        let tw = ClientEncoding::named("EUC_TW").unwrap();
        assert!(tw.decode(b"SELECT 1").is_ok());
        assert!(matches!(
            tw.decode(b"SELECT '\xc4\xa1'"),
            Err(Unreadable::Undecoded { .. })
        ));
    }
}
