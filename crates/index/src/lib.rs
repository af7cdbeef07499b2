//! Wasm-aware discovery: what a component says about itself, and the index
//! the registry builds from it.
//!
//! - [`metadata`] reads a component's (or core module's, or WIT package's)
//!   metadata custom sections (`wasm-metadata`: name, authors,
//!   description, licenses, source, homepage, revision, version,
//!   producers, dependencies; the legacy `registry-metadata` JSON) and its
//!   WIT world (`wit-parser`: the interfaces it imports and exports, with
//!   their package versions). Pure: bytes in, [`metadata::ComponentInfo`]
//!   out; nothing is trusted beyond the bytes, which the log signs.

pub mod metadata;
