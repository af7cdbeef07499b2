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
//! - [`index`] keeps every release's metadata and world in SQLite (FTS5
//!   for text) and answers searches: text, namespace, license, author,
//!   and WIT (`exports`, `imports`, with version requirements, and
//!   `only-imports`). Derived from the log, rebuilt from it at will.
//! - [`compat`] compares two versions' WIT the semver way: what a newer
//!   version removes or changes of what it provided, or newly requires.
//!   The registry's semver gate asks it before a release.

pub mod compat;
pub mod index;
pub mod metadata;
