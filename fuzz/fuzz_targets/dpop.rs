#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ids_fuzz_targets::dpop(data));
