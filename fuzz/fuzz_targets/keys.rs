//! See `cache_core::__fuzz::keys`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cache_core::__fuzz::keys(data));
