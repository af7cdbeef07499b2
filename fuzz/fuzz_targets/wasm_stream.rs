#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cairn_fuzz::wasm::wasm_stream(data, Some(cairn_fuzz::wasmparser_accepts));
});
