//! Validating WebAssembly while it streams in.

use std::mem;

use wasmparser::{
    BinaryReaderError, Chunk, FuncValidatorAllocations, Parser, ValidPayload, Validator,
    WasmFeatures,
};

/// Validates a WebAssembly module or component fed in pieces, as it streams in.
///
/// Each [`feed`](WasmStream::feed) validates every section and function body
/// the bytes so far complete; only the unparsed tail is kept. So at most the
/// largest single section (a function body, for the code section) plus what
/// one `feed` brings is ever buffered, never the whole file: nested modules
/// and components are parsed in place. Accepts every proposal wasmparser
/// knows (the policy of the content door, [`crate::Admission`]).
pub struct WasmStream {
    machine: Machine,
    /// Bytes fed but not parsed yet, from the start: a section or function
    /// body that is still incomplete.
    buf: Vec<u8>,
    peak: usize,
    /// The first error; the stream refuses everything after it.
    failed: Option<WasmError>,
}

/// Why bytes are not a valid WebAssembly module or component: wasmparser's
/// message and the byte offset it gives.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message} (at offset {offset:#x})")]
pub struct WasmError {
    message: String,
    offset: usize,
}

impl WasmError {
    /// What is wrong, without the offset.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where in the input, in bytes from its start.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl From<BinaryReaderError> for WasmError {
    fn from(e: BinaryReaderError) -> WasmError {
        WasmError {
            message: e.message().to_owned(),
            offset: e.offset(),
        }
    }
}

/// The parser and validator, apart from the buffer their payloads borrow.
struct Machine {
    validator: Validator,
    /// Parses the module or component being read now.
    parser: Parser,
    /// Parsers of the components enclosing `parser`, innermost last.
    outer: Vec<Parser>,
    allocs: FuncValidatorAllocations,
    /// The top-level module or component has ended.
    done: bool,
}

impl Machine {
    /// Parses and validates as much of `data` as forms whole payloads;
    /// returns how many bytes that used. At `eof` there is no more input.
    fn run(&mut self, data: &[u8], eof: bool) -> Result<usize, WasmError> {
        let mut used = 0;
        while !self.done {
            let payload = match self.parser.parse(&data[used..], eof)? {
                Chunk::NeedMoreData(_) => break,
                Chunk::Parsed { consumed, payload } => {
                    used += consumed;
                    payload
                }
            };
            match self.validator.payload(&payload)? {
                ValidPayload::Ok => {}
                // The body borrows `data`: check it now, before that goes.
                ValidPayload::Func(func, body) => {
                    let mut func = func.into_validator(mem::take(&mut self.allocs));
                    func.validate(&body)?;
                    self.allocs = func.into_allocations();
                }
                // A nested module or component: read it with its own parser,
                // then go back to this one.
                ValidPayload::Parser(nested) => {
                    let outer = mem::replace(&mut self.parser, nested);
                    self.outer.push(outer);
                }
                ValidPayload::End(_) => match self.outer.pop() {
                    Some(outer) => self.parser = outer,
                    None => self.done = true,
                },
            }
        }
        if self.done && used < data.len() {
            return Err(WasmError {
                message: "unexpected bytes after the end".to_owned(),
                offset: self.offset(),
            });
        }
        Ok(used)
    }

    /// How far the input has been parsed.
    fn offset(&self) -> usize {
        usize::try_from(self.parser.offset()).unwrap_or(usize::MAX)
    }
}

impl WasmStream {
    /// A stream expecting the first byte of a module or component.
    pub fn new() -> WasmStream {
        let features = WasmFeatures::all();
        let mut parser = Parser::new(0);
        parser.set_features(features);
        WasmStream {
            machine: Machine {
                validator: Validator::new_with_features(features),
                parser,
                outer: Vec::new(),
                allocs: FuncValidatorAllocations::default(),
                done: false,
            },
            buf: Vec::new(),
            peak: 0,
            failed: None,
        }
    }

    /// Validates as far as the bytes fed so far allow, keeping only the
    /// unparsed tail. After an error, every call returns that error.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), WasmError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = if self.buf.is_empty() {
            // Nothing pending: parse straight from `bytes`, keep the tail.
            self.machine
                .run(bytes, false)
                .map(|used| self.buf.extend_from_slice(&bytes[used..]))
        } else {
            self.buf.extend_from_slice(bytes);
            self.peak = self.peak.max(self.buf.len());
            self.machine.run(&self.buf, false).map(|used| {
                self.buf.drain(..used);
                // A large section is done: give its memory back.
                if self.buf.capacity() > (1 << 20) && self.buf.capacity() > 4 * self.buf.len() {
                    self.buf.shrink_to_fit();
                }
            })
        };
        self.peak = self.peak.max(self.buf.len());
        result.map_err(|e| self.fail(e))
    }

    /// Ends the input: what is left must complete a valid module or component.
    pub fn finish(mut self) -> Result<(), WasmError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let rest = mem::take(&mut self.buf);
        let machine = &mut self.machine;
        machine.run(&rest, true)?;
        if !machine.done {
            // Not expected: at the end, wasmparser either ends or fails.
            return Err(WasmError {
                message: "unexpected end of input".to_owned(),
                offset: machine.offset(),
            });
        }
        Ok(())
    }

    /// The most bytes ever buffered at once.
    pub fn peak_buffered(&self) -> usize {
        self.peak
    }

    /// The memory the buffer holds now.
    pub fn buffered(&self) -> usize {
        self.buf.capacity()
    }

    fn fail(&mut self, e: WasmError) -> WasmError {
        self.failed = Some(e.clone());
        self.buf = Vec::new();
        e
    }
}

impl Default for WasmStream {
    fn default() -> WasmStream {
        WasmStream::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The piece sizes every fixture is fed in, besides whole.
    const CHUNKS: [usize; 5] = [1, 2, 7, 64, 4096];

    /// wasmparser's verdict on the whole input at once.
    fn reference(bytes: &[u8]) -> Result<(), String> {
        Validator::new_with_features(WasmFeatures::all())
            .validate_all(bytes)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Feeds `bytes` in pieces of `chunk` bytes (with an empty feed between
    /// pieces); the verdict and the peak buffered.
    fn streamed(bytes: &[u8], chunk: usize) -> (Result<(), String>, usize) {
        let mut stream = WasmStream::new();
        for piece in bytes.chunks(chunk) {
            let fed = stream.feed(piece).and_then(|()| stream.feed(&[]));
            if let Err(e) = fed {
                return (Err(e.to_string()), stream.peak_buffered());
            }
        }
        let peak = stream.peak_buffered();
        (stream.finish().map_err(|e| e.to_string()), peak)
    }

    /// Asserts the stream gives validate_all's verdict in every chunking,
    /// and returns it.
    fn same_verdict(name: &str, bytes: &[u8]) -> Result<(), String> {
        let expected = reference(bytes);
        for chunk in CHUNKS.into_iter().chain([bytes.len().max(1)]) {
            let (got, _) = streamed(bytes, chunk);
            assert_eq!(got, expected, "{name}, fed in pieces of {chunk}");
        }
        expected
    }

    fn wat(text: &str) -> Vec<u8> {
        wat::parse_str(text).expect("fixture is valid text")
    }

    fn core_module() -> Vec<u8> {
        wat(r#"(module
            (type $binop (func (param i32 i32) (result i32)))
            (import "env" "log" (func $log (param i32)))
            (import "env" "base" (global $base i32))
            (memory (export "memory") 1)
            (table 2 funcref)
            (global $counter (mut i32) (i32.const 0))
            (func $add (export "add") (type $binop)
                local.get 0
                local.get 1
                i32.add)
            (func $main
                (call $log (i32.const 42))
                (global.set $counter (global.get $base)))
            (func $init
                (memory.init $passive (i32.const 0) (i32.const 0) (i32.const 7))
                (data.drop $passive))
            (start $main)
            (elem (i32.const 0) $add $main)
            (data (i32.const 16) "hello, world")
            (data $passive "passive")
            (@custom "cairn-test" "some custom bytes")
        )"#)
    }

    fn many_functions() -> Vec<u8> {
        let mut text = String::from("(module (memory 1)\n");
        for i in 0..300 {
            text.push_str(&format!(
                "(func (export \"f{i}\") (param i32) (result i32) (local i64)
                    local.get 0 i32.const {i} i32.add
                    local.get 0
                    (if (result i32) (then i32.const {i}) (else i32.const 1))
                    i32.mul
                    (i32.store (i32.const 0) (i32.const {i})))\n"
            ));
        }
        text.push(')');
        wat(&text)
    }

    fn component() -> Vec<u8> {
        wat(r#"(component
            (core module $m
                (memory (export "mem") 1)
                (func (export "answer") (result i32) i32.const 42))
            (core instance $i (instantiate $m))
            (component $inner
                (core module $deep
                    (func (export "id") (param i32) (result i32) local.get 0))
                (component $innermost
                    (core module (func (param i64) (result i64) local.get 0))))
            (instance (instantiate $inner))
            (type $answer-type (func (result u32)))
            (func $answer (type $answer-type) (canon lift (core func $i "answer")))
            (export "answer" (func $answer))
        )"#)
    }

    fn append(mut bytes: Vec<u8>, tail: &[u8]) -> Vec<u8> {
        bytes.extend_from_slice(tail);
        bytes
    }

    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let low = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(low);
                return;
            }
            out.push(low | 0x80);
        }
    }

    fn section(id: u8, body: &[u8], out: &mut Vec<u8>) {
        out.push(id);
        leb(body.len(), out);
        out.extend_from_slice(body);
    }

    /// A module of `funcs` functions `() -> ()`, each `ops` times
    /// `i32.const 1; drop`; the last one also adds on an empty stack when
    /// `broken`.
    fn big_module(funcs: usize, ops: usize, broken: bool) -> Vec<u8> {
        let mut out = b"\0asm\x01\0\0\0".to_vec();
        section(1, &[1, 0x60, 0, 0], &mut out);
        let mut functions = Vec::new();
        leb(funcs, &mut functions);
        functions.resize(functions.len() + funcs, 0);
        section(3, &functions, &mut out);
        let mut code = Vec::new();
        leb(funcs, &mut code);
        for i in 0..funcs {
            let mut body = vec![0];
            for _ in 0..ops {
                body.extend_from_slice(&[0x41, 0x01, 0x1a]);
            }
            if broken && i + 1 == funcs {
                body.push(0x6a);
            }
            body.push(0x0b);
            leb(body.len(), &mut code);
            code.extend_from_slice(&body);
        }
        section(10, &code, &mut out);
        out
    }

    /// A component holding `module` as a core module section.
    fn component_of(module: &[u8]) -> Vec<u8> {
        let mut out = b"\0asm\x0d\0\x01\0".to_vec();
        section(1, module, &mut out);
        out
    }

    #[test]
    fn valid_fixtures() {
        let fixtures = [
            ("core module", core_module()),
            ("many functions", many_functions()),
            ("component", component()),
            ("empty module", b"\0asm\x01\0\0\0".to_vec()),
            ("empty component", b"\0asm\x0d\0\x01\0".to_vec()),
            // A complete module followed by an empty custom section is one
            // valid module: a module ends only with its input.
            ("custom section after", append(core_module(), &[0, 1, 0])),
        ];
        for (name, bytes) in fixtures {
            assert_eq!(same_verdict(name, &bytes), Ok(()), "{name}");
        }
    }

    #[test]
    fn invalid_fixtures() {
        let type_error = wat("(module (func (result i32) i32.add))");
        let nested_type_error = wat(r#"(component
            (core module (func (result i32) i32.const 1))
            (component
                (core module (memory 1) (func (param f32) (result i32) local.get 0)))
        )"#);
        let fixtures = [
            ("empty", Vec::new()),
            ("not wasm", b"not wasm".to_vec()),
            ("bad magic", b"\0asx\x01\0\0\0".to_vec()),
            ("bad version", b"\0asm\x02\0\0\0".to_vec()),
            ("type error", type_error),
            ("type error in a nested module", nested_type_error),
            ("type error in the last of many", big_module(200, 10, true)),
            ("garbage after", append(core_module(), &[0xff])),
            (
                "module after module",
                append(core_module(), b"\0asm\x01\0\0\0"),
            ),
            (
                "section out of order after",
                append(core_module(), &[1, 1, 0]),
            ),
            ("empty module section after", append(component(), &[1, 0])),
            ("truncated module section", component_of(b"\0asm\x01\0")),
            ("truncated nested module", {
                let mut bytes = component_of(&core_module());
                bytes.truncate(bytes.len() - 3);
                bytes
            }),
        ];
        for (name, bytes) in fixtures {
            assert!(same_verdict(name, &bytes).is_err(), "{name}");
        }
    }

    #[test]
    fn truncated_anywhere() {
        for (name, whole) in [("core module", core_module()), ("component", component())] {
            let mut invalid = 0;
            for cut in 0..whole.len() {
                let verdict = same_verdict(&format!("{name} cut at {cut}"), &whole[..cut]);
                invalid += usize::from(verdict.is_err());
            }
            // Cutting between sections leaves a valid, smaller one; any other
            // cut does not.
            assert!(invalid > whole.len() / 2, "{name}: {invalid} invalid cuts");
            for cut in [0, 1, 4, 7, whole.len() / 2, whole.len() - 1] {
                assert!(reference(&whole[..cut]).is_err(), "{name} cut at {cut}");
            }
        }
    }

    #[test]
    fn errors_match_wasmparser() {
        let bytes = wat("(module (func) (func (param i32) local.get 0 i64.const 1 i32.add drop))");
        let expected = Validator::new_with_features(WasmFeatures::all())
            .validate_all(&bytes)
            .map(|_| ())
            .expect_err("fixture is invalid");
        let mut stream = WasmStream::new();
        let got = stream
            .feed(&bytes)
            .and_then(|()| stream.finish())
            .expect_err("stream refuses it");
        assert_eq!(got.message(), expected.message());
        assert_eq!(got.offset(), expected.offset());
        assert_eq!(got.to_string(), expected.to_string());
    }

    #[test]
    fn stays_failed() {
        let mut stream = WasmStream::new();
        let first = stream.feed(b"not wasm").expect_err("bad magic");
        let again = stream.feed(b"\0asm\x01\0\0\0").expect_err("still failed");
        assert_eq!(again.to_string(), first.to_string());
        assert!(stream.finish().is_err());
        assert!(WasmStream::default().finish().is_err());
    }

    #[test]
    fn big_module_buffers_little() {
        const PIECE: usize = 64 * 1024;
        let module = big_module(3000, 400, false);
        let body = 1 + 3 * 400 + 1 + 2;
        assert!(module.len() > 3 << 20, "{} bytes", module.len());
        for (name, bytes) in [
            ("big module", module.clone()),
            ("component of a big module", component_of(&module)),
        ] {
            assert_eq!(reference(&bytes), Ok(()));
            let (verdict, peak) = streamed(&bytes, PIECE);
            assert_eq!(verdict, Ok(()), "{name}");
            assert!(peak < bytes.len() / 8, "{name}: peak {peak}");
            assert!(peak <= PIECE + body, "{name}: peak {peak}");
            let (verdict, peak) = streamed(&bytes, 4096);
            assert_eq!(verdict, Ok(()), "{name}");
            assert!(peak <= 4096 + body, "{name}: peak {peak}");
        }
        let broken = component_of(&big_module(3000, 400, true));
        assert!(reference(&broken).is_err());
        let (verdict, peak) = streamed(&broken, PIECE);
        assert_eq!(verdict, reference(&broken));
        assert!(peak <= PIECE + body, "peak {peak}");
    }
}
