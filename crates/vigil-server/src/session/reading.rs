//! How the server will read the next text a client sends: in which client
//! encoding, and whether Vigil can be sure of it.
//!
//! The settings that decide how text is read (`standard_conforming_strings`,
//! `client_encoding`) are reported by the server with ParameterStatus, but
//! only before its next ReadyForQuery. Anything that runs (a Query, a Bind,
//! an Execute, a fast-path call) may have changed them through code Vigil
//! cannot see (a trigger, a function), so from the moment such a message is
//! forwarded until its ReadyForQuery arrives, Vigil does not know how the
//! server reads text. A text that reads the same whatever those settings
//! (ASCII, and no backslash inside a plain string literal) passes anyway;
//! any other waits for the ReadyForQuery, or is refused when it is pipelined
//! inside the batch of what ran, where the server would read it before
//! reporting anything.

use std::borrow::Cow;

use crate::encoding::{ClientEncoding, Unreadable};

/// Why a text cannot be read now.
#[derive(Debug)]
pub(crate) enum NotNow {
    /// Wait for the server's ReadyForQuery, then read it.
    Wait,
    /// The server reads it before it could say how: refused.
    Uncertain,
    Unreadable(Unreadable),
}

#[derive(Debug)]
pub(crate) struct Reading {
    /// The client encoding the server reported last.
    encoding: ClientEncoding,
    /// The newest request forwarded that runs something.
    last_run: u64,
    /// Every request up to this one has been answered with ReadyForQuery.
    ready_through: u64,
}

impl Reading {
    pub(crate) fn new(encoding: ClientEncoding) -> Reading {
        Reading {
            encoding,
            last_run: 0,
            ready_through: 0,
        }
    }

    pub(crate) fn encoding(&self) -> &ClientEncoding {
        &self.encoding
    }

    /// The server reported its client encoding; `false` if Vigil cannot
    /// follow it (the session must end).
    pub(crate) fn encoding_changed(&mut self, name: &str) -> bool {
        match ClientEncoding::named(name) {
            Some(encoding) => {
                self.encoding = encoding;
                true
            }
            None => false,
        }
    }

    /// Request `request`, which runs something, is being forwarded.
    pub(crate) fn runs(&mut self, request: u64) {
        self.last_run = self.last_run.max(request);
    }

    /// ReadyForQuery answered every request up to `through`.
    pub(crate) fn ready(&mut self, through: u64) {
        self.ready_through = self.ready_through.max(through);
    }

    /// `sql` as the server will read it. `closed_through`: the newest
    /// request before it that ends in ReadyForQuery.
    pub(crate) fn read<'a>(
        &self,
        sql: &'a [u8],
        closed_through: u64,
    ) -> Result<Cow<'a, str>, NotNow> {
        let stable = sql.is_ascii()
            && std::str::from_utf8(sql)
                .is_ok_and(|text| !vigil_sql::reads_differently_without_standard_strings(text));
        if !stable && self.last_run > self.ready_through {
            return Err(match self.last_run <= closed_through {
                true => NotNow::Wait,
                false => NotNow::Uncertain,
            });
        }
        self.encoding.decode(sql).map_err(NotNow::Unreadable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_that_depend_on_the_settings_wait_while_something_runs() {
        let mut reading = Reading::new(ClientEncoding::utf8());
        let plain = b"SELECT 1".as_slice();
        let escaped = br"SELECT 'a\'".as_slice();
        let accented = "SELECT 'é'".as_bytes();
        assert!(reading.read(escaped, 0).is_ok());
        // A Query (request 3) was forwarded and is not answered yet.
        reading.runs(3);
        assert!(reading.read(plain, 3).is_ok());
        assert!(matches!(reading.read(escaped, 3), Err(NotNow::Wait)));
        assert!(matches!(reading.read(accented, 3), Err(NotNow::Wait)));
        // An Execute (5) pipelined before any Sync.
        reading.runs(5);
        assert!(matches!(reading.read(escaped, 3), Err(NotNow::Uncertain)));
        reading.ready(6);
        assert_eq!(reading.read(escaped, 6).unwrap(), r"SELECT 'a\'");
        assert!(reading.encoding_changed("LATIN1"));
        assert_eq!(reading.read(b"'\xe9'", 6).unwrap(), "'é'");
        assert!(!reading.encoding_changed("SJIS"));
    }
}
