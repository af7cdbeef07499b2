//! The content door's streaming Wasm validator, fed arbitrary bytes in
//! arbitrary pieces: it never panics, and its verdict is the same however
//! the bytes are split and (in the fuzz target) the same as wasmparser's
//! one-shot `Validator` on the whole input.

use cairn_registry::oci::metadata_annotations;
use cairn_registry::{WasmError, WasmStream};

use crate::input::Input;

/// `wasm_stream`: the first byte `n` says how many piece sizes follow
/// (`n % 8`, at least one); each size byte `b` feeds `(b & 0x7f) + 1`
/// bytes, preceded by an empty feed when `b & 0x80`; the sizes repeat
/// until the input ends. The rest is the Wasm. `reference` is the one-shot
/// verdict to agree with, if any.
pub fn wasm_stream(data: &[u8], reference: Option<fn(&[u8]) -> bool>) {
    let mut input = Input::new(data);
    let count = (input.below(8)).max(1);
    let sizes: Vec<u8> = (0..count).map(|_| input.u8()).collect();
    let wasm = input.rest();

    let streamed = streamed(wasm, &sizes);
    let whole = {
        let mut stream = WasmStream::new();
        stream.feed(wasm).and_then(|()| stream.finish())
    };
    assert_eq!(
        streamed.is_ok(),
        whole.is_ok(),
        "pieces {sizes:?}: {streamed:?}, whole: {whole:?}"
    );
    if let Some(reference) = reference {
        assert_eq!(
            streamed.is_ok(),
            reference(wasm),
            "the stream says {streamed:?}, wasmparser the opposite"
        );
    }
    if let Err(e) = &streamed {
        let _ = (e.message(), e.offset(), e.to_string());
    }
    let _ = metadata_annotations(wasm);
}

fn streamed(wasm: &[u8], sizes: &[u8]) -> Result<(), WasmError> {
    let mut stream = WasmStream::new();
    let mut rest = wasm;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        if size & 0x80 != 0 {
            stream.feed(&[])?;
        }
        let (piece, tail) =
            rest.split_at(usize::from(size & 0x7f).saturating_add(1).min(rest.len()));
        stream.feed(piece)?;
        rest = tail;
    }
    let peak = stream.peak_buffered();
    assert!(
        peak <= wasm.len(),
        "buffered {peak} of {} bytes",
        wasm.len()
    );
    stream.finish()
}
