//! Fuzz target: see `xsocket::fuzz_api` (src/fuzz_api.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    xsocket::fuzz_api::smux_session(data);
});
