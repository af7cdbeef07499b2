//! Synthetic packages for the search and page benchmarks: realistic
//! metadata and worlds (descriptions from a vocabulary, SPDX licenses,
//! authors, 2 to 8 imports and 1 to 3 exports from 60 WASI-like interfaces
//! at several versions), made by a small deterministic generator.

use cairn_index::index::{IndexedRelease, PackageUpdate};
use cairn_index::metadata::{ComponentInfo, InterfaceName, World};

/// The description vocabulary.
pub const WORDS: &[&str] = &[
    "http",
    "proxy",
    "router",
    "cache",
    "json",
    "parser",
    "image",
    "resize",
    "thumbnail",
    "auth",
    "token",
    "jwt",
    "crypto",
    "hash",
    "sql",
    "query",
    "kv",
    "store",
    "queue",
    "stream",
    "log",
    "metrics",
    "trace",
    "markdown",
    "render",
    "template",
    "compress",
    "zip",
    "csv",
    "yaml",
    "validate",
    "schema",
    "graphql",
    "grpc",
    "websocket",
    "email",
    "sms",
    "payment",
    "search",
    "index",
    "vector",
    "embedding",
    "ml",
    "inference",
    "audio",
    "video",
    "pdf",
    "font",
    "geo",
    "time",
    "cron",
    "scheduler",
    "workflow",
    "rules",
    "policy",
    "filter",
    "transform",
    "ssr",
];
/// The licenses drawn from.
pub const LICENSES: &[&str] = &[
    "MIT",
    "Apache-2.0",
    "Apache-2.0 WITH LLVM-exception",
    "MIT OR Apache-2.0",
    "BSD-3-Clause",
    "MPL-2.0",
    "ISC",
];
/// The WIT packages interfaces come from.
pub const PACKAGES: &[&str] = &[
    "wasi:http",
    "wasi:io",
    "wasi:cli",
    "wasi:filesystem",
    "wasi:sockets",
    "wasi:clocks",
    "wasi:random",
    "wasi:keyvalue",
    "wasi:blobstore",
    "wasi:messaging",
    "wasi:config",
    "wasi:logging",
];
/// The interface names in each.
pub const INTERFACES: &[&str] = &["types", "handler", "store", "streams", "environment"];
/// Their versions.
pub const VERSIONS: &[(u64, u64, u64)] = &[(0, 2, 0), (0, 2, 1), (0, 2, 3), (0, 3, 0)];

/// A small deterministic generator (xorshift).
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn draw(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// One of `list`.
    pub fn pick<'a, T>(&mut self, list: &'a [T]) -> &'a T {
        &list[(self.draw() % list.len() as u64) as usize]
    }
    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.draw() % n
    }
}

/// A random interface with a version.
pub fn interface(rng: &mut Rng) -> InterfaceName {
    let (major, minor, patch) = *rng.pick(VERSIONS);
    InterfaceName {
        package: (*rng.pick(PACKAGES)).to_owned(),
        interface: (*rng.pick(INTERFACES)).to_owned(),
        version: Some(semver::Version::new(major, minor, patch)),
    }
}

/// Package number `i` (in namespaces `ns0` to `ns499`), with one release
/// at `registry_index`.
pub fn package(i: usize, rng: &mut Rng, registry_index: Option<u64>) -> PackageUpdate {
    let words: Vec<&str> = (0..2 + rng.below(3)).map(|_| *rng.pick(WORDS)).collect();
    let package = format!("ns{}:{}-{i}", i % 500, words[..2].join("-"));
    let description = format!(
        "A {} component that does {} with {} for {}",
        words.join(" "),
        rng.pick(WORDS),
        rng.pick(WORDS),
        rng.pick(WORDS)
    );
    let mut imports: Vec<InterfaceName> = (0..2 + rng.below(7)).map(|_| interface(rng)).collect();
    imports.sort();
    imports.dedup_by(|a, b| a.unversioned() == b.unversioned());
    let mut exports: Vec<InterfaceName> = (0..1 + rng.below(3)).map(|_| interface(rng)).collect();
    exports.sort();
    exports.dedup_by(|a, b| a.unversioned() == b.unversioned());
    let info = ComponentInfo {
        description: Some(description),
        licenses: Some((*rng.pick(LICENSES)).to_owned()),
        authors: Some(format!("Author {} <a{}@example.test>", i % 3000, i % 3000)),
        source: Some(format!("https://git.example.test/{package}")),
        world: Some(World {
            imports,
            exports,
            ..World::default()
        }),
        ..ComponentInfo::default()
    };
    PackageUpdate {
        package: package.clone(),
        attestation_log: None,
        signatures_read: true,
        releases: vec![IndexedRelease {
            package,
            version: semver::Version::new(1, rng.below(10), 0),
            digest: format!("sha256:{:064x}", i),
            record_id: format!("sha256:{:064x}", i + 1),
            log_id: format!("sha256:{:064x}", i + 2),
            registry_index,
            published: 1_700_000_000 + i as i64,
            yanked: rng.below(50) == 0,
            signed: false,
            info: Some(info),
        }],
    }
}
