//! Startup packets: any bytes decode or fail, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((_, used))) = vigil_wire::decode_startup(data) {
        assert!(used <= data.len());
    }
});
