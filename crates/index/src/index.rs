//! The search index: every release's metadata and world, and per package
//! the latest release's, in one SQLite database with an FTS5 table for
//! text. It is derived from the registry log (a follower feeds it, see
//! [`Index::apply`]) and can always be built again from it, so it lives
//! beside whatever store holds the log (files, SQLite, PostgreSQL) and
//! answers the same on each. Nothing in it is authoritative: every hit
//! names the log record that is.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::metadata::{ComponentInfo, InterfaceName};

/// The most hits a page may hold.
pub const MAX_PER_PAGE: u32 = 100;
/// The most candidates a query looks at before filtering by WIT versions
/// and pagination (the total it reports is capped here).
pub const MAX_CANDIDATES: usize = 20_000;
/// The longest text query, in bytes.
pub const MAX_QUERY_TEXT: usize = 256;
/// The most interface conditions in one query.
pub const MAX_CONDITIONS: usize = 16;

/// Why the index failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// SQLite failed.
    #[error("the search index: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored row does not read back.
    #[error("the search index holds a damaged row: {0}")]
    Corrupt(String),
    /// The query is not one.
    #[error("{0}")]
    Query(String),
}

/// One release, as the indexer saw it in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexedRelease {
    /// `namespace:name`.
    pub package: String,
    /// The version.
    pub version: semver::Version,
    /// The content digest (`sha256:...`).
    pub digest: String,
    /// The releasing record.
    pub record_id: String,
    /// The package log's id.
    pub log_id: String,
    /// The registry index of the releasing record, if seen.
    pub registry_index: Option<u64>,
    /// The release record's timestamp (seconds).
    pub published: i64,
    /// Whether it is yanked.
    pub yanked: bool,
    /// Whether a signature or attestation of it was verified by a key the
    /// registry trusts for the package.
    #[serde(default)]
    pub signed: bool,
    /// What the content says about itself (`None`: not read, e.g. too
    /// large, or not held).
    pub info: Option<ComponentInfo>,
}

/// What the indexer brings for one package: its releases as the log has
/// them now (new ones with their metadata; known ones may come without,
/// to update their yank).
#[derive(Clone, Debug, Default)]
pub struct PackageUpdate {
    /// `namespace:name`.
    pub package: String,
    /// Its releases.
    pub releases: Vec<IndexedRelease>,
    /// The id of its attestation log, so that a later record there can be
    /// traced back to the package ([`Index::package_of_log`]).
    pub attestation_log: Option<String>,
    /// Whether the releases' `signed` was read from the attestation log
    /// this time; if not, the index keeps what it had for known releases
    /// (the indexer reads that log only when it has new records).
    pub signatures_read: bool,
}

/// An interface a query asks for: `wasi:http/incoming-handler`, with an
/// optional version requirement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceReq {
    /// `package/interface`, without a version.
    pub name: String,
    /// The versions that match.
    pub req: Option<semver::VersionReq>,
}

impl InterfaceReq {
    /// Parses `ns:pkg/iface` or `ns:pkg/iface@<requirement>` (`@0.2`,
    /// `@^0.2.1`, `@=0.2.0`).
    pub fn parse(text: &str) -> Result<InterfaceReq, IndexError> {
        let bad = |why: &str| {
            IndexError::Query(format!(
                "`{text}` is not an interface: {why} (e.g. `wasi:http/incoming-handler` or \
                 `wasi:http/incoming-handler@0.2`)"
            ))
        };
        let (name, req) = match text.split_once('@') {
            Some((name, req)) => (
                name,
                Some(semver::VersionReq::parse(req).map_err(|e| bad(&e.to_string()))?),
            ),
            None => (text, None),
        };
        let parsed = InterfaceName::parse(name).ok_or_else(|| bad("no `ns:package/name`"))?;
        Ok(InterfaceReq {
            name: parsed.unversioned(),
            req,
        })
    }

    fn matches(&self, name: &str, version: Option<&semver::Version>) -> bool {
        name == self.name
            && match (&self.req, version) {
                (None, _) => true,
                (Some(req), Some(v)) => req.matches(v),
                (Some(_), None) => false,
            }
    }
}

/// A pattern of interfaces a component may import: `wasi:cli/environment`
/// or a whole package, `wasi:io/*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportPattern(String);

impl ImportPattern {
    /// Parses `ns:pkg/iface` or `ns:pkg/*`.
    pub fn parse(text: &str) -> Result<ImportPattern, IndexError> {
        let probe = text.strip_suffix("/*").map(|p| format!("{p}/x"));
        if InterfaceName::parse(probe.as_deref().unwrap_or(text)).is_none() || text.contains('@') {
            return Err(IndexError::Query(format!(
                "`{text}` is not an interface pattern (e.g. `wasi:cli/environment` or `wasi:io/*`)"
            )));
        }
        Ok(ImportPattern(text.to_owned()))
    }

    fn matches(&self, name: &str) -> bool {
        match self.0.strip_suffix("/*") {
            Some(package) => name.rsplit_once('/').is_some_and(|(p, _)| p == package),
            None => name == self.0,
        }
    }
}

/// A search.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// Words in the name, description, authors or keywords.
    pub text: Option<String>,
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Only packages whose license expression names this one.
    pub license: Option<String>,
    /// Only packages whose authors contain this.
    pub author: Option<String>,
    /// The latest release exports all of these.
    pub exports: Vec<InterfaceReq>,
    /// The latest release imports all of these.
    pub imports: Vec<InterfaceReq>,
    /// The latest release imports nothing beyond these.
    pub only_imports: Option<Vec<ImportPattern>>,
    /// The latest release imports nothing the world (`ns:pkg/world@v`,
    /// defined by a WIT package in this registry) does not: a host of
    /// that world can run it.
    pub satisfies: Option<String>,
    /// Packages whose every release is yanked too.
    pub include_yanked: bool,
    /// Only packages whose latest release carries a verified signature.
    pub signed: bool,
    /// From 1.
    pub page: u32,
    /// Hits per page (at most [`MAX_PER_PAGE`]).
    pub per_page: u32,
}

/// What the index adds to a release's line of the sparse index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sparse {
    /// The version.
    pub version: semver::Version,
    /// Its world's digest ([`crate::metadata::World::digest`]), once
    /// indexed.
    pub world: Option<String>,
    /// The releasing record's registry index, if seen.
    pub registry_index: Option<u64>,
}

/// One hit: a package and its latest release.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hit {
    /// `namespace:name`.
    pub package: String,
    /// Its latest release not yanked (or its latest, when all are).
    pub version: String,
    /// Whether that release is yanked.
    pub yanked: bool,
    /// Whether that release carries a verified signature.
    #[serde(default)]
    pub signed: bool,
    /// Its description.
    pub description: Option<String>,
    /// Its license expression.
    pub license: Option<String>,
    /// Its authors.
    pub authors: Option<String>,
    /// Interfaces it exports.
    pub exports: Vec<String>,
    /// Interfaces it imports.
    pub imports: Vec<String>,
    /// The content digest.
    pub digest: String,
    /// The package log and the releasing record (the log is the truth).
    pub log_id: String,
    /// The releasing record.
    pub record_id: String,
    /// Its registry index, if known.
    pub registry_index: Option<u64>,
}

/// A page of hits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchPage {
    /// Hits that match (capped at [`MAX_CANDIDATES`]).
    pub total: usize,
    /// This page, from 1.
    pub page: u32,
    /// Hits per page.
    pub per_page: u32,
    /// The hits.
    pub hits: Vec<Hit>,
}

/// The search index: one writing connection (the indexer's) and, for a
/// file, a few reading ones (WAL), so searches neither wait for each
/// other nor for a batch being written.
pub struct Index {
    conn: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next: std::sync::atomic::AtomicUsize,
}

/// Reading connections of a file-backed index.
const READERS: usize = 8;

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").finish_non_exhaustive()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS progress (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    indexed_to INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS releases (
    package TEXT NOT NULL,
    version TEXT NOT NULL,
    digest TEXT NOT NULL,
    record_id TEXT NOT NULL,
    log_id TEXT NOT NULL,
    registry_index INTEGER,
    published INTEGER NOT NULL,
    yanked INTEGER NOT NULL,
    signed INTEGER NOT NULL DEFAULT 0,
    info TEXT,
    world TEXT,
    UNIQUE (package, version)
);
CREATE INDEX IF NOT EXISTS releases_by_digest ON releases (digest);
CREATE TABLE IF NOT EXISTS packages (
    id INTEGER PRIMARY KEY,
    package TEXT NOT NULL UNIQUE,
    namespace TEXT NOT NULL,
    latest TEXT NOT NULL,
    yanked INTEGER NOT NULL,
    description TEXT,
    license TEXT,
    authors TEXT,
    keywords TEXT,
    imports TEXT NOT NULL DEFAULT '',
    exports TEXT NOT NULL DEFAULT '',
    signed INTEGER NOT NULL DEFAULT 0,
    kind TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS packages_by_namespace ON packages (namespace, package);
CREATE TABLE IF NOT EXISTS interfaces (
    direction INTEGER NOT NULL,
    name TEXT NOT NULL,
    package_id INTEGER NOT NULL,
    PRIMARY KEY (direction, name, package_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS worlds (
    id TEXT PRIMARY KEY,
    package TEXT NOT NULL,
    imports TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS side_logs (
    log_id TEXT PRIMARY KEY,
    package TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS word_scores (
    word TEXT NOT NULL,
    score REAL NOT NULL,
    package_id INTEGER NOT NULL,
    PRIMARY KEY (word, score, package_id)
) WITHOUT ROWID;
CREATE VIRTUAL TABLE IF NOT EXISTS packages_text USING fts5 (
    name, description, authors, keywords, tags,
    content = '', content_rowid = 'id',
    tokenize = \"unicode61 separators ':-_./'\",
    prefix = '2 3 4'
);
";

/// The schema's version (`PRAGMA user_version`). The index is derived
/// from the log: an index of another version is dropped and built again.
const SCHEMA_VERSION: i64 = 13;

const DROP: &str = "
DROP TABLE IF EXISTS packages_text;
DROP TABLE IF EXISTS word_scores;
DROP TABLE IF EXISTS side_logs;
DROP TABLE IF EXISTS worlds;
DROP TABLE IF EXISTS interfaces;
DROP TABLE IF EXISTS packages;
DROP TABLE IF EXISTS releases;
DROP TABLE IF EXISTS progress;
";

const IMPORT: i64 = 0;
const EXPORT: i64 = 1;

impl Index {
    /// Opens (creating) the index in the file at `path`.
    pub fn open(path: &Path) -> Result<Index, IndexError> {
        let mut index = Index::with(Connection::open(path)?)?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        for _ in 0..cores.clamp(2, READERS) {
            let reader = Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            index.readers.push(Mutex::new(reader));
        }
        Ok(index)
    }

    /// An index in memory (tests, the memory backend): one connection.
    pub fn in_memory() -> Result<Index, IndexError> {
        Index::with(Connection::open_in_memory()?)
    }

    fn with(conn: Connection) -> Result<Index, IndexError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Indexing a package runs a dozen statements: all stay prepared.
        conn.set_prepared_statement_cache_capacity(64);
        // Rows go in all over large B-trees (words, interfaces, text
        // segments): a 32 MiB page cache keeps the pages they touch
        // (SQLite's default, 2 MiB, re-read them from the OS per round).
        conn.pragma_update(None, "cache_size", -32_768)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version != SCHEMA_VERSION {
            conn.execute_batch(DROP)?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        conn.execute_batch(SCHEMA)?;
        // FTS5's rank: bm25, the name weighing most, then keywords.
        conn.execute(
            "INSERT INTO packages_text (packages_text, rank) VALUES ('rank', 'bm25(10.0, 2.0, 1.0, 4.0, 0.0)')",
            [],
        )?;
        // Segments merge 8 at a time (FTS5's default, 4, rewrote every
        // term twice as often while indexing; searches read no slower).
        conn.execute(
            "INSERT INTO packages_text (packages_text, rank) VALUES ('automerge', 8)",
            [],
        )?;
        Ok(Index {
            conn: Mutex::new(conn),
            readers: Vec::new(),
            next: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// The writing connection.
    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A reading connection: a free one, else the next in turn (in memory,
    /// the one connection).
    fn read(&self) -> std::sync::MutexGuard<'_, Connection> {
        if self.readers.is_empty() {
            return self.lock();
        }
        for reader in &self.readers {
            if let Ok(free) = reader.try_lock() {
                return free;
            }
        }
        let turn = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.readers[turn % self.readers.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Folds the write-ahead log into the database file (after a bulk of
    /// writes, so the WAL does not stay large).
    pub fn checkpoint(&self) -> Result<(), IndexError> {
        self.lock()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// The registry index the log is indexed up to (the next to read).
    pub fn indexed_to(&self) -> Result<u64, IndexError> {
        let at: Option<i64> = self
            .read()
            .query_row("SELECT indexed_to FROM progress WHERE id = 0", [], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(at.map_or(0, |n| n.max(0) as u64))
    }

    /// The releases of `package` the index holds metadata for.
    pub fn known_releases(&self, package: &str) -> Result<Vec<semver::Version>, IndexError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT version FROM releases WHERE package = ?1 AND info IS NOT NULL",
        )?;
        let rows = stmt.query_map([package], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            if let Ok(v) = semver::Version::parse(&row?) {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Applies the updates of the log up to registry index `to` (one
    /// transaction: a crash leaves the index as it was, to be redone).
    pub fn apply(&self, updates: &[PackageUpdate], to: u64) -> Result<(), IndexError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        for update in updates {
            apply_package(&tx, update)?;
        }
        tx.prepare_cached(
            "INSERT INTO progress (id, indexed_to) VALUES (0, ?1)
             ON CONFLICT (id) DO UPDATE SET indexed_to = excluded.indexed_to",
        )?
        .execute([to as i64])?;
        tx.commit()?;
        Ok(())
    }

    /// The package whose attestation log is `log_id`, if it was indexed.
    pub fn package_of_log(&self, log_id: &str) -> Result<Option<String>, IndexError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached("SELECT package FROM side_logs WHERE log_id = ?1")?;
        Ok(stmt.query_row([log_id], |r| r.get(0)).optional()?)
    }

    /// Every release of `package`, newest version first.
    pub fn package(&self, package: &str) -> Result<Vec<IndexedRelease>, IndexError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT package, version, digest, record_id, log_id, registry_index, published, yanked, info, signed
             FROM releases WHERE package = ?1",
        )?;
        let rows = stmt.query_map([package], release_row)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row??);
        }
        out.sort_by(|a, b| b.version.cmp(&a.version));
        Ok(out)
    }

    /// Per release of `package` the index knows: its world's digest (made
    /// once, when indexed) and its registry index.
    pub fn sparse(&self, package: &str) -> Result<Vec<Sparse>, IndexError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT version, world, registry_index FROM releases WHERE package = ?1",
        )?;
        let rows = stmt.query_map([package], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (version, world, index) = row?;
            let version = semver::Version::parse(&version)
                .map_err(|e| IndexError::Corrupt(format!("version `{version}`: {e}")))?;
            out.push(Sparse {
                version,
                world,
                registry_index: index.map(|i| i.max(0) as u64),
            });
        }
        Ok(out)
    }

    /// The releases whose content is `digest`.
    pub fn by_digest(&self, digest: &str) -> Result<Vec<IndexedRelease>, IndexError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT package, version, digest, record_id, log_id, registry_index, published, yanked, info, signed
             FROM releases WHERE digest = ?1 ORDER BY package, version LIMIT 1000",
        )?;
        let rows = stmt.query_map([digest], release_row)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row??);
        }
        Ok(out)
    }

    /// Searches.
    pub fn search(&self, query: &Query) -> Result<SearchPage, IndexError> {
        let per_page = query.per_page.clamp(1, MAX_PER_PAGE);
        let page = query.page.max(1);
        if query.exports.len() + query.imports.len() > MAX_CONDITIONS {
            return Err(IndexError::Query(format!(
                "at most {MAX_CONDITIONS} interface conditions in one search"
            )));
        }
        let conn = self.read();
        // Which packages match, in order (ids only); then the page's rows.
        let mut from = String::from(" FROM packages p");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut wheres: Vec<String> = Vec::new();
        let text = match query.text.as_deref().map(str::trim) {
            Some(t) if !t.is_empty() => {
                if t.len() > MAX_QUERY_TEXT {
                    return Err(IndexError::Query(format!(
                        "a search text has at most {MAX_QUERY_TEXT} bytes"
                    )));
                }
                Some(fts_query(t)).filter(|q| !q.is_empty())
            }
            _ => None,
        };
        // Words, the namespace, the license and the yanked state are all
        // answered by the text table (the state and namespace as tags), so
        // that FTS5 alone ranks, counts and pages when nothing else is
        // asked.
        let mut matching: Vec<String> = Vec::new();
        if let Some(text) = &text {
            matching.push(format!("{{name description authors keywords}} : ({text})"));
        }
        if let Some(ns) = &query.namespace {
            matching.push(format!("tags : {}", tag_token("nsid", ns)));
        }
        if query.signed {
            matching.push("tags : signed".into());
        }
        if let Some(license) = &query.license {
            let ids = license_ids(license);
            if ids.len() != 1 || phrase_of(license).is_empty() {
                return Err(IndexError::Query(format!(
                    "`{license}` is not a license id: give one SPDX id, e.g. `MIT` or `Apache-2.0`"
                )));
            }
            matching.push(format!("tags : {}", tag_token("licid", &ids[0])));
        }
        let fts = !matching.is_empty();
        if fts {
            let mut expression = format!("({})", matching.join(" AND "));
            // The few yanked packages taken out (cheaper than asking every
            // live one in).
            if !query.include_yanked {
                expression.push_str(" NOT tags : yanked");
            }
            from.push_str(" JOIN packages_text t ON t.rowid = p.id");
            wheres.push("packages_text MATCH ?".into());
            args.push(expression.into());
        } else if !query.include_yanked {
            wheres.push("p.yanked = 0".into());
        }
        if let Some(author) = &query.author {
            wheres.push("p.authors LIKE ? ESCAPE '\\'".into());
            args.push(format!("%{}%", like_escape(author)).into());
        }
        // What a host can run: components (a WIT package or a core module
        // imports nothing, and runs nowhere).
        if query.only_imports.is_some() || query.satisfies.is_some() {
            wheres.push("p.kind = 'component'".into());
        }
        for (direction, reqs) in [(EXPORT, &query.exports), (IMPORT, &query.imports)] {
            for req in reqs.iter() {
                wheres.push(
                    "p.id IN (SELECT i.package_id FROM interfaces i \
                     WHERE i.direction = ? AND i.name = ?)"
                        .into(),
                );
                args.push(direction.into());
                args.push(req.name.clone().into());
            }
        }
        if !wheres.is_empty() {
            from.push_str(" WHERE ");
            from.push_str(&wheres.join(" AND "));
        }
        // Text: best match first (FTS5's rank: bm25 with the name weighing
        // most); else by name.
        // FTS5 alone answers when the text table holds every condition.
        let fts_alone =
            fts && query.author.is_none() && query.exports.is_empty() && query.imports.is_empty();
        let order = if text.is_some() {
            " ORDER BY t.rank, p.package"
        } else {
            " ORDER BY p.package"
        };
        let world_imports: Option<Vec<String>> = match &query.satisfies {
            None => None,
            Some(world) => {
                let imports: Option<String> = conn
                    .query_row("SELECT imports FROM worlds WHERE id = ?1", [world], |r| {
                        r.get(0)
                    })
                    .optional()?;
                let imports = imports.ok_or_else(|| {
                    IndexError::Query(format!(
                        "world `{world}` is not defined by a WIT package in this registry (give \
                         `ns:pkg/world@version`)"
                    ))
                })?;
                Some(imports.split_whitespace().map(str::to_owned).collect())
            }
        };
        let needs_interfaces = query
            .exports
            .iter()
            .chain(&query.imports)
            .any(|r| r.req.is_some())
            || query.only_imports.is_some()
            || world_imports.is_some();
        let start = ((page - 1) as usize).saturating_mul(per_page as usize);
        let asks_interfaces = !query.exports.is_empty() || !query.imports.is_empty();
        let interfaces_alone =
            asks_interfaces && !fts && query.author.is_none() && !needs_interfaces;
        let (total, ids) = if interfaces_alone {
            // Only interface names: each condition's packages straight
            // from the index (in id order), intersected here, then the
            // few left ordered by name.
            let mut lists = conn.prepare_cached(
                "SELECT package_id FROM interfaces WHERE direction = ?1 AND name = ?2
                 ORDER BY package_id",
            )?;
            let mut matched: Option<Vec<i64>> = None;
            for (direction, reqs) in [(EXPORT, &query.exports), (IMPORT, &query.imports)] {
                for req in reqs.iter() {
                    let mut ids: Vec<i64> = lists
                        .query_map(params![direction, req.name], |r| r.get(0))?
                        .collect::<Result<_, _>>()?;
                    ids.dedup();
                    matched = Some(match matched {
                        None => ids,
                        Some(before) => intersect(&before, &ids),
                    });
                }
            }
            let mut row =
                conn.prepare_cached("SELECT package, yanked FROM packages WHERE id = ?1")?;
            let mut named: Vec<(String, i64)> = Vec::new();
            for id in matched.unwrap_or_default() {
                let found: Option<(String, i64)> = row
                    .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if let Some((package, yanked)) = found {
                    if query.include_yanked || yanked == 0 {
                        named.push((package, id));
                    }
                }
                if named.len() == MAX_CANDIDATES {
                    break;
                }
            }
            named.sort();
            let total = named.len();
            let page_ids = named
                .into_iter()
                .skip(start)
                .take(per_page as usize)
                .map(|(_, id)| id)
                .collect();
            (total, page_ids)
        } else if needs_interfaces {
            // Versions and only-imports are checked here, on each
            // candidate's interface lists.
            let sql =
                format!("SELECT p.id, p.imports, p.exports{from}{order} LIMIT {MAX_CANDIDATES}");
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            let mut matched = Vec::new();
            for row in rows {
                let (id, imports, exports) = row?;
                let imports = parse_list(&imports);
                let satisfied = world_imports.as_ref().is_none_or(|allowed| {
                    imports.iter().all(|(name, version)| {
                        allowed
                            .iter()
                            .any(|a| *a == with_version(name, version.as_ref()))
                    })
                });
                if satisfied && wit_matches(query, &imports, &parse_list(&exports)) {
                    matched.push(id);
                }
            }
            let total = matched.len();
            let page_ids: Vec<i64> = matched
                .into_iter()
                .skip(start)
                .take(per_page as usize)
                .collect();
            (total, page_ids)
        } else if fts_alone {
            let expression = &args[0];
            let total: i64 = conn.query_row(
                "SELECT count(*) FROM packages_text WHERE packages_text MATCH ?1",
                [expression],
                |r| r.get(0),
            )?;
            // One common word alone: its packages in the order of their
            // precomputed relevance, not ranked one by one.
            // Words alone matching thousands: ordered by stored relevance
            // (one word), or by that of the least common word (several),
            // not ranked one by one.
            let common = match (&query.text, &query.namespace, &query.license) {
                (Some(t), None, None) if !query.signed && total as usize > STATIC_RANK_FROM => {
                    let mut words: Vec<String> = words_of(t).take(16).collect();
                    words.sort();
                    words.dedup();
                    Some(words)
                }
                _ => None,
            };
            if let Some(words) = common.filter(|w| !w.is_empty()) {
                let (yanked, size) = (query.include_yanked, per_page as usize);
                let ids = if words.len() == 1 {
                    by_word_score(&conn, &words[0], yanked, start, size)?
                } else {
                    by_rarest_word(&conn, &words, yanked, start, size)?
                };
                if let Some(ids) = ids {
                    let mut hits = Vec::with_capacity(ids.len());
                    for id in ids {
                        hits.push(hit_of(&conn, id)?);
                    }
                    return Ok(SearchPage {
                        total: (total.max(0) as usize).min(MAX_CANDIDATES),
                        page,
                        per_page,
                        hits,
                    });
                }
            }
            let sql = if text.is_some() {
                format!(
                    "SELECT rowid FROM packages_text WHERE packages_text MATCH ?1 \
                     ORDER BY rank LIMIT {per_page} OFFSET {start}"
                )
            } else {
                format!("SELECT p.id{from} ORDER BY p.package LIMIT {per_page} OFFSET {start}")
            };
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map([expression], |r| r.get::<_, i64>(0))?;
            let mut page_ids = Vec::new();
            for row in rows {
                page_ids.push(row?);
            }
            ((total.max(0) as usize).min(MAX_CANDIDATES), page_ids)
        } else {
            let count_sql = format!("SELECT count(*) FROM (SELECT 1{from} LIMIT {MAX_CANDIDATES})");
            let total: i64 =
                conn.query_row(&count_sql, rusqlite::params_from_iter(args.iter()), |r| {
                    r.get(0)
                })?;
            let sql = format!("SELECT p.id{from}{order} LIMIT {per_page} OFFSET {start}");
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
                r.get::<_, i64>(0)
            })?;
            let mut page_ids = Vec::new();
            for row in rows {
                page_ids.push(row?);
            }
            (total.max(0) as usize, page_ids)
        };
        let mut hits = Vec::with_capacity(ids.len());
        for id in ids {
            hits.push(hit_of(&conn, id)?);
        }
        Ok(SearchPage {
            total,
            page,
            per_page,
            hits,
        })
    }
}

type Interfaces = Vec<(String, Option<semver::Version>)>;

/// The hit for package row `id`: its latest release and where its record
/// is.
fn hit_of(conn: &Connection, id: i64) -> Result<Hit, IndexError> {
    let (mut hit, imports, exports): (Hit, String, String) = conn.query_row(
        "SELECT p.package, p.latest, p.yanked, p.description, p.license, p.authors, p.imports,
                p.exports, r.digest, r.log_id, r.record_id, r.registry_index, r.signed
         FROM packages p JOIN releases r ON r.package = p.package AND r.version = p.latest
         WHERE p.id = ?1",
        [id],
        |r| {
            Ok((
                Hit {
                    package: r.get(0)?,
                    version: r.get(1)?,
                    yanked: r.get::<_, i64>(2)? != 0,
                    signed: r.get::<_, i64>(12)? != 0,
                    description: r.get(3)?,
                    license: r.get(4)?,
                    authors: r.get(5)?,
                    exports: Vec::new(),
                    imports: Vec::new(),
                    digest: r.get(8)?,
                    log_id: r.get(9)?,
                    record_id: r.get(10)?,
                    registry_index: r.get::<_, Option<i64>>(11)?.map(|i| i.max(0) as u64),
                },
                r.get(6)?,
                r.get(7)?,
            ))
        },
    )?;
    hit.imports = imports.split_whitespace().map(str::to_owned).collect();
    hit.exports = exports.split_whitespace().map(str::to_owned).collect();
    Ok(hit)
}

/// A package's row as it was, before an update changes it: what its
/// text, word and interface rows were made from, to take them out.
struct OldRow {
    id: i64,
    name: String,
    description: Option<String>,
    authors: Option<String>,
    keywords: Option<String>,
    license: Option<String>,
    namespace: String,
    yanked: bool,
    signed: bool,
    /// [`list_of`] the imported interfaces.
    imports: String,
    /// [`list_of`] the exported interfaces.
    exports: String,
}

/// `name@version`, or `name`.
fn with_version(name: &str, version: Option<&semver::Version>) -> String {
    match version {
        Some(v) => format!("{name}@{v}"),
        None => name.to_owned(),
    }
}

/// A package row's list of interfaces (`name@version` or `name`, by
/// spaces) as names and versions.
fn parse_list(text: &str) -> Interfaces {
    text.split_whitespace()
        .map(|item| match item.split_once('@') {
            Some((name, version)) => (name.to_owned(), semver::Version::parse(version).ok()),
            None => (item.to_owned(), None),
        })
        .collect()
}

/// The interfaces as a package row keeps them (sorted).
fn list_of(list: &[InterfaceName]) -> String {
    let mut items: Vec<String> = list
        .iter()
        .map(|i| match &i.version {
            Some(v) => format!("{}@{v}", i.unversioned()),
            None => i.unversioned(),
        })
        .collect();
    items.sort();
    items.join(" ")
}

fn wit_matches(query: &Query, imports: &Interfaces, exports: &Interfaces) -> bool {
    let has = |list: &Interfaces, req: &InterfaceReq| {
        list.iter().any(|(n, v)| req.matches(n, v.as_ref()))
    };
    query.exports.iter().all(|r| has(exports, r))
        && query.imports.iter().all(|r| has(imports, r))
        && query.only_imports.as_ref().is_none_or(|allowed| {
            imports
                .iter()
                .all(|(n, _)| allowed.iter().any(|p| p.matches(n)))
        })
}

/// Each word of `text` as a quoted prefix term: every word must match;
/// FTS5's own syntax is never taken from the user.
fn fts_query(text: &str) -> String {
    words_of(text)
        .take(16)
        .map(|w| format!("\"{w}\"*"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Matches above which one word's packages are ordered by their stored
/// relevance (kept per word when a package is indexed) rather than ranked
/// per search.
pub const STATIC_RANK_FROM: usize = 2_000;

/// Words a prefix may stand for in the stored-relevance path (more, and
/// the text table ranks).
const PREFIX_WORDS_MAX: usize = 8;

/// The ids of page `start..start + per_page` of the packages with a word
/// starting with `prefix`, most relevant first; `None` when the prefix
/// stands for too many words.
fn by_word_score(
    conn: &Connection,
    prefix: &str,
    include_yanked: bool,
    start: usize,
    per_page: usize,
) -> Result<Option<Vec<i64>>, IndexError> {
    let Some(end) = prefix_end(prefix) else {
        return Ok(None);
    };
    let mut words: Vec<String> = Vec::new();
    let mut next = conn.prepare_cached(
        "SELECT word FROM word_scores WHERE word >= ?1 AND word < ?2 AND word <> ?3
         ORDER BY word LIMIT 1",
    )?;
    let mut from = prefix.to_owned();
    loop {
        let after = words.last().cloned().unwrap_or_default();
        let found: Option<String> = next
            .query_row(params![from, end, after], |r| r.get(0))
            .optional()?;
        let Some(word) = found else { break };
        if words.len() == PREFIX_WORDS_MAX {
            return Ok(None);
        }
        from = word.clone();
        words.push(word);
    }
    // Pages end where the candidates do, as in the text table's path.
    let wanted = start.saturating_add(per_page).min(MAX_CANDIDATES);
    let mut best: std::collections::HashMap<i64, f64> = std::collections::HashMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT s.package_id, s.score FROM word_scores s JOIN packages p ON p.id = s.package_id
         WHERE s.word = ?1 AND (?2 OR p.yanked = 0)
         ORDER BY s.score DESC, s.package_id DESC LIMIT ?3",
    )?;
    for word in &words {
        let rows = stmt.query_map(params![word, include_yanked, wanted as i64], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?))
        })?;
        for row in rows {
            let (id, score) = row?;
            let kept = best.entry(id).or_insert(score);
            *kept = kept.max(score);
        }
    }
    let mut ranked: Vec<(i64, f64)> = best.into_iter().collect();
    // As the stored order reads backwards: best first, then newest.
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
    Ok(Some(
        ranked
            .into_iter()
            .skip(start)
            .take(per_page)
            .map(|(id, _)| id)
            .collect(),
    ))
}

/// The end of the words starting with `prefix`: the prefix with its last
/// character bumped.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut end: Vec<char> = prefix.chars().collect();
    let last = end.pop()?;
    end.push(char::from_u32(u32::from(last) + 1)?);
    Some(end.into_iter().collect())
}

/// Page `start..start + per_page` of the packages with every one of
/// `words` (as prefixes), ordered by the stored relevance of the least
/// common word: its best packages are read in order and kept when their
/// text has the other words too, reading more while too few are kept.
fn by_rarest_word(
    conn: &Connection,
    words: &[String],
    include_yanked: bool,
    start: usize,
    per_page: usize,
) -> Result<Option<Vec<i64>>, IndexError> {
    let mut counted = Vec::with_capacity(words.len());
    let mut count =
        conn.prepare_cached("SELECT count(*) FROM word_scores WHERE word >= ?1 AND word < ?2")?;
    for word in words {
        let Some(end) = prefix_end(word) else {
            return Ok(None);
        };
        let n: i64 = count.query_row(params![word, end], |r| r.get(0))?;
        counted.push((n, word.as_str()));
    }
    counted.sort();
    let Some(((_, rarest), others)) = counted.split_first() else {
        return Ok(None);
    };
    let others: Vec<&str> = others.iter().map(|(_, w)| *w).collect();
    // Pages end where the candidates do, as in the text table's path.
    let wanted = start.saturating_add(per_page).min(MAX_CANDIDATES);
    let mut text = conn.prepare_cached(
        "SELECT package, description, authors, keywords FROM packages WHERE id = ?1",
    )?;
    let mut fetch = wanted.saturating_mul(16).min(MAX_CANDIDATES);
    loop {
        let Some(candidates) = by_word_score(conn, rarest, include_yanked, 0, fetch)? else {
            return Ok(None);
        };
        let exhausted = candidates.len() < fetch;
        let mut kept = Vec::with_capacity(wanted);
        for id in candidates {
            let row: Option<[Option<String>; 4]> = text
                .query_row([id], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?]))
                .optional()?;
            let Some(row) = row else { continue };
            let tokens: Vec<String> = row.iter().flatten().flat_map(|t| words_of(t)).collect();
            if others
                .iter()
                .all(|w| tokens.iter().any(|t| t.starts_with(w)))
            {
                kept.push(id);
                if kept.len() == wanted {
                    break;
                }
            }
        }
        if kept.len() == wanted || exhausted || fetch >= MAX_CANDIDATES {
            return Ok(Some(kept.into_iter().skip(start).collect()));
        }
        fetch = fetch.saturating_mul(4).min(MAX_CANDIDATES);
    }
}

/// The words of a text as the text table splits them: alphanumeric runs,
/// lower-cased.
fn words_of(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// The text columns' weights in ranking (as the text table's bm25) and
/// their typical lengths in words.
const RANKED_COLUMNS: [(f64, f64); 4] = [(10.0, 3.0), (2.0, 12.0), (1.0, 3.0), (4.0, 4.0)];

/// Each word of a package's ranked text with its relevance: BM25's term
/// weighting (k1 = 1.2, b = 0.75) over the same weighted columns as the
/// text table's rank, with typical column lengths fixed instead of the
/// index's running averages, so a score is made once, when the package is
/// indexed. It orders the packages matching one common word
/// ([`STATIC_RANK_FROM`]) without ranking every match per search.
fn word_scores(
    name: &str,
    description: Option<&str>,
    authors: Option<&str>,
    keywords: Option<&str>,
) -> std::collections::BTreeMap<String, f64> {
    const K1: f64 = 1.2;
    const B: f64 = 0.75;
    let mut scores = std::collections::BTreeMap::new();
    let columns = [Some(name), description, authors, keywords];
    for (text, (weight, typical)) in columns.iter().zip(RANKED_COLUMNS) {
        let Some(text) = text else { continue };
        let words: Vec<String> = words_of(text).take(4096).collect();
        let length = words.len() as f64;
        let mut counts: std::collections::BTreeMap<&str, f64> = std::collections::BTreeMap::new();
        for word in &words {
            *counts.entry(word).or_default() += 1.0;
        }
        for (word, tf) in counts {
            let part = weight * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * length / typical));
            *scores.entry(word.to_owned()).or_insert(0.0) += part;
        }
    }
    // Rounded, so that the same text always makes the same key.
    for score in scores.values_mut() {
        *score = (*score * 1e6).round() / 1e6;
    }
    scores
}

/// The words of `text`, lower-cased, alphanumeric runs only (safe inside
/// an FTS5 phrase).
fn phrase_of(text: &str) -> String {
    words_of(text).take(16).collect::<Vec<_>>().join(" ")
}

/// The ids in both sorted lists.
fn intersect(a: &[i64], b: &[i64]) -> Vec<i64> {
    let (mut i, mut j) = (0, 0);
    let mut both = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                both.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    both
}

/// A package's tags in the text table: its namespace, each SPDX id its
/// license expression names, whether it is yanked and whether it is
/// signed. A namespace or license id is one token ([`tag_token`]): a
/// filter on it reads that token's short list, never the positions of
/// common words. (Only what searches ask for is a tag: every token costs
/// each write of the text table, its prefixes included.)
fn tags_of(namespace: &str, yanked: bool, signed: bool, license: Option<&str>) -> String {
    let mut tags = tag_token("nsid", namespace);
    if yanked {
        tags.push_str(" yanked");
    }
    for id in license.map(license_ids).unwrap_or_default() {
        tags.push(' ');
        tags.push_str(&tag_token("licid", &id));
    }
    if signed {
        tags.push_str(" signed");
    }
    tags
}

/// One word for the tokenizer standing for `value`: `prefix` and the
/// lower-cased value's bytes in hex.
fn tag_token(prefix: &str, value: &str) -> String {
    let mut token = String::from(prefix);
    for byte in value.trim().to_lowercase().bytes() {
        token.push_str(&format!("{byte:02x}"));
    }
    token
}

/// The license and exception ids an SPDX expression names (its
/// operators and parentheses left out), lower-cased, at most 16.
fn license_ids(expression: &str) -> Vec<String> {
    expression
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter(|w| !w.is_empty())
        .filter(|w| !["and", "or", "with"].contains(&w.to_lowercase().as_str()))
        .take(16)
        .map(str::to_lowercase)
        .collect()
}

fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn release_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<IndexedRelease, IndexError>> {
    let version: String = r.get(1)?;
    let info: Option<String> = r.get(8)?;
    let registry_index: Option<i64> = r.get(5)?;
    let parsed = (|| {
        Ok(IndexedRelease {
            package: r.get(0)?,
            version: semver::Version::parse(&version)
                .map_err(|e| IndexError::Corrupt(format!("version `{version}`: {e}")))?,
            digest: r.get(2)?,
            record_id: r.get(3)?,
            log_id: r.get(4)?,
            registry_index: registry_index.map(|i| i.max(0) as u64),
            published: r.get(6)?,
            yanked: r.get::<_, i64>(7)? != 0,
            signed: r.get::<_, i64>(9)? != 0,
            info: info
                .map(|text| serde_json::from_str(&text))
                .transpose()
                .map_err(|e| IndexError::Corrupt(format!("metadata: {e}")))?,
        })
    })();
    Ok(parsed)
}

fn apply_package(tx: &rusqlite::Transaction<'_>, update: &PackageUpdate) -> Result<(), IndexError> {
    if let Some(log) = &update.attestation_log {
        tx.prepare_cached("INSERT OR IGNORE INTO side_logs (log_id, package) VALUES (?1, ?2)")?
            .execute(params![log, update.package])?;
    }
    for release in &update.releases {
        // The worlds a WIT package defines, for `satisfies` (a world id
        // names its package, so only that package's releases define it).
        if let Some(world) = release.info.as_ref().and_then(|i| i.world.as_ref()) {
            for defined in &world.defined {
                // Only the package the world's id names may define it.
                let owner = defined.id.split_once('/').map(|(package, _)| package);
                if owner != Some(release.package.as_str()) {
                    continue;
                }
                tx.prepare_cached(
                    "INSERT INTO worlds (id, package, imports) VALUES (?1, ?2, ?3)
                     ON CONFLICT (id) DO UPDATE SET imports = excluded.imports",
                )?
                .execute(params![
                    defined.id,
                    release.package,
                    list_of(&defined.imports)
                ])?;
            }
        }
        let info = release
            .info
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| IndexError::Corrupt(e.to_string()))?;
        tx.prepare_cached(
            "INSERT INTO releases (package, version, digest, record_id, log_id, registry_index,
                                   published, yanked, info, world, signed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (package, version) DO UPDATE SET
                yanked = excluded.yanked,
                signed = CASE WHEN ?12 THEN excluded.signed ELSE releases.signed END,
                registry_index = coalesce(excluded.registry_index, releases.registry_index),
                info = coalesce(excluded.info, releases.info),
                world = coalesce(excluded.world, releases.world)",
        )?
        .execute(params![
            release.package,
            release.version.to_string(),
            release.digest,
            release.record_id,
            release.log_id,
            release.registry_index.map(|i| i as i64),
            release.published,
            release.yanked as i64,
            info,
            release
                .info
                .as_ref()
                .and_then(|i| i.world.as_ref())
                .map(|w| w.digest()),
            release.signed as i64,
            update.signatures_read,
        ])?;
    }
    // The package's row: its latest release not yanked (else its latest).
    let mut stmt =
        tx.prepare_cached("SELECT version, yanked, info, signed FROM releases WHERE package = ?1")?;
    let rows = stmt.query_map([&update.package], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)? != 0,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, i64>(3)? != 0,
        ))
    })?;
    let mut all = Vec::new();
    for row in rows {
        let (version, yanked, info, signed) = row?;
        if let Ok(version) = semver::Version::parse(&version) {
            all.push((version, yanked, info, signed));
        }
    }
    drop(stmt);
    let latest = all
        .iter()
        .filter(|(_, yanked, _, _)| !yanked)
        .max_by(|a, b| a.0.cmp(&b.0))
        .or_else(|| all.iter().max_by(|a, b| a.0.cmp(&b.0)));
    let Some((version, yanked, info, signed)) = latest else {
        return Ok(());
    };
    // The latest release's metadata: in hand when this update brought it,
    // else as stored.
    let fresh = update
        .releases
        .iter()
        .find(|r| r.version == *version)
        .and_then(|r| r.info.clone());
    let info: Option<ComponentInfo> = match fresh {
        Some(info) => Some(info),
        None => info
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| IndexError::Corrupt(format!("metadata: {e}")))?,
    };
    let namespace = update
        .package
        .split_once(':')
        .map_or(update.package.as_str(), |(ns, _)| ns);
    let description = info.as_ref().and_then(|i| i.summary().map(str::to_owned));
    let license = info.as_ref().and_then(|i| i.license().map(str::to_owned));
    let authors = info.as_ref().and_then(|i| {
        i.authors
            .clone()
            .or_else(|| i.legacy.as_ref().map(|l| l.authors.join(", ")))
    });
    let keywords = info
        .as_ref()
        .and_then(|i| i.legacy.as_ref().map(|l| l.categories.join(" ")));
    // The text table mirrors the packages table (external content): the
    // old row's terms go out before the row changes.
    let old: Option<OldRow> = tx
        .prepare_cached(
            "SELECT id, package, description, authors, keywords, license, namespace, yanked, signed,
                    imports, exports
             FROM packages WHERE package = ?1",
        )?
        .query_row([&update.package], |r| {
            Ok(OldRow {
                id: r.get(0)?,
                name: r.get(1)?,
                description: r.get(2)?,
                authors: r.get(3)?,
                keywords: r.get(4)?,
                license: r.get(5)?,
                namespace: r.get(6)?,
                yanked: r.get::<_, i64>(7)? != 0,
                signed: r.get::<_, i64>(8)? != 0,
                imports: r.get(9)?,
                exports: r.get(10)?,
            })
        })
        .optional()?;
    if let Some(old) = &old {
        tx.prepare_cached(
            "INSERT INTO packages_text (packages_text, rowid, name, description, authors, keywords,
                                        tags)
             VALUES ('delete', ?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            old.id,
            old.name,
            old.description,
            old.authors,
            old.keywords,
            tags_of(
                &old.namespace,
                old.yanked,
                old.signed,
                old.license.as_deref()
            )
        ])?;
        let mut gone = tx.prepare_cached(
            "DELETE FROM word_scores WHERE word = ?1 AND score = ?2 AND package_id = ?3",
        )?;
        for (word, score) in word_scores(
            &old.name,
            old.description.as_deref(),
            old.authors.as_deref(),
            old.keywords.as_deref(),
        ) {
            gone.execute(params![word, score, old.id])?;
        }
        // The interface rows, by the lists the row keeps of them.
        let mut gone = tx.prepare_cached(
            "DELETE FROM interfaces WHERE direction = ?1 AND name = ?2 AND package_id = ?3",
        )?;
        for (direction, list) in [(IMPORT, &old.imports), (EXPORT, &old.exports)] {
            for (name, _) in parse_list(list) {
                gone.execute(params![direction, name, old.id])?;
            }
        }
    }
    let world = info.as_ref().and_then(|i| i.world.as_ref());
    let imports = world.map(|w| list_of(&w.imports)).unwrap_or_default();
    let exports = world.map(|w| list_of(&w.exports)).unwrap_or_default();
    let id: i64 = tx
        .prepare_cached(
        "INSERT INTO packages (package, namespace, latest, yanked, description, license, authors,
                               keywords, imports, exports, kind, signed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (package) DO UPDATE SET latest = excluded.latest, yanked = excluded.yanked,
            signed = excluded.signed,
            description = excluded.description, license = excluded.license,
            authors = excluded.authors, keywords = excluded.keywords,
            imports = excluded.imports, exports = excluded.exports, kind = excluded.kind
         RETURNING id",
        )?
        .query_row(
        params![
            update.package,
            namespace,
            version.to_string(),
            *yanked as i64,
            description,
            license,
            authors,
            keywords,
            imports,
            exports,
            info.as_ref().map_or("", |i| match i.kind {
                crate::metadata::Kind::Component => "component",
                crate::metadata::Kind::WitPackage => "wit-package",
                crate::metadata::Kind::Module => "module",
            }),
            *signed as i64,
        ],
        |r| r.get(0),
    )?;
    tx.prepare_cached(
        "INSERT INTO packages_text (rowid, name, description, authors, keywords, tags)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        id,
        update.package,
        description,
        authors,
        keywords,
        tags_of(namespace, *yanked, *signed, license.as_deref())
    ])?;
    let mut scored = tx.prepare_cached(
        "INSERT OR REPLACE INTO word_scores (word, score, package_id) VALUES (?1, ?2, ?3)",
    )?;
    for (word, score) in word_scores(
        &update.package,
        description.as_deref(),
        authors.as_deref(),
        keywords.as_deref(),
    ) {
        scored.execute(params![word, score, id])?;
    }
    if let Some(world) = info.as_ref().and_then(|i| i.world.as_ref()) {
        // (Two versions of one interface make one row: versions are
        // checked on the package's lists.)
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO interfaces (direction, name, package_id) VALUES (?1, ?2, ?3)",
        )?;
        for (direction, list) in [(IMPORT, &world.imports), (EXPORT, &world.exports)] {
            for name in list {
                insert.execute(params![direction, name.unversioned(), id])?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_checked() {
        assert!(InterfaceReq::parse("wasi:http/incoming-handler@0.2").is_ok());
        assert!(InterfaceReq::parse("wasi:http/incoming-handler@nope").is_err());
        assert!(InterfaceReq::parse("incoming-handler").is_err());
        assert!(ImportPattern::parse("wasi:io/*").is_ok());
        assert!(ImportPattern::parse("wasi:io/streams").is_ok());
        assert!(ImportPattern::parse("wasi:io/streams@0.2.0").is_err());
        assert!(ImportPattern::parse("*").is_err());
        assert!(ImportPattern::parse("wasi:io/*")
            .expect("pattern")
            .matches("wasi:io/streams"));
        assert!(!ImportPattern::parse("wasi:io/*")
            .expect("pattern")
            .matches("wasi:iox/streams"));
        assert_eq!(
            fts_query("HTTP-handler \"x\" OR y"),
            "\"http\"* \"handler\"* \"x\"* \"or\"* \"y\"*"
        );
    }
}
