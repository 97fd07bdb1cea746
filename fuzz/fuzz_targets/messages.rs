//! The message bodies Vigil reads: error fields, SASL and password messages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_wire::fields::{password, ErrorFields, SaslInitial};

fuzz_target!(|data: &[u8]| {
    if let Ok(fields) = ErrorFields::parse(data) {
        let _ = (fields.code(), fields.message(), fields.severity());
    }
    let _ = SaslInitial::parse(data);
    let _ = password(data);
});
