//! The SCRAM server over any client messages: errors, never panics, and never
//! accepts a proof for a mock (unknown) user.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_auth::{ScramServer, Verifier};

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else { return };
    let at = usize::from(split).min(data.len());
    let (first, last) = data.split_at(at);
    let verifier = Verifier::mock(b"fuzz", "user");
    if let Ok((server, _)) = ScramServer::start(verifier.clone(), true, first) {
        assert!(server.finish(last).is_err());
    }
    if let Ok((server, _)) = ScramServer::start(verifier, false, first) {
        let _ = server.finish(last);
    }
    let _ = std::str::from_utf8(data).map(|text| text.parse::<Verifier>());
});
