//! What a Wasm binary says about itself: its metadata custom sections and,
//! for a component or a WIT package, its WIT world. Pure: no IO, no clock.
//!
//! The sections are read with `wasm-metadata` (one section per field, as
//! `wkg build`, cargo-component and `wasm-tools metadata add` write them),
//! from the outermost binary's own sections only. A component's world is
//! the names of its own imports and exports (`ns:pkg/iface@version` for
//! an interface, a plain label for a function or an inline interface),
//! read with `wasmparser` without type checking, since release content
//! was validated at the content door; what the names do not settle (a WIT
//! package, whose interfaces and worlds are inside its exported types, or
//! a name or kind only the WIT decoder interprets) goes to `wit-parser`'s
//! decoder, [`decode_world`], which the names' reading is tested equal
//! to. A section the crate refuses (a `licenses` that is not an SPDX
//! expression, a `source` that is not a URL) is named in
//! [`ComponentInfo::problems`].

use serde::{Deserialize, Serialize};
use wasmparser_new as wasmparser;
use wit_parser::decoding::DecodedWasm;
use wit_parser::{Resolve, WorldItem, WorldKey};

/// The largest legacy `registry-metadata` section read, in bytes.
pub const MAX_LEGACY_SECTION: usize = 64 << 10;
/// The most imports or exports kept per world (a larger world is cut, and
/// the cut named in [`ComponentInfo::problems`]).
pub const MAX_WORLD_ITEMS: usize = 1_000;

/// What kind of binary it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A component (its world is its imports and exports).
    #[default]
    Component,
    /// A WIT package encoded as a component (`wkg wit build`).
    WitPackage,
    /// A core WebAssembly module.
    Module,
}

/// One entry of the `producers` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Producer {
    /// `language`, `processed-by` or `sdk`.
    pub field: String,
    /// The tool or language.
    pub name: String,
    /// Its version.
    pub version: String,
}

/// An interface named by its WIT id: `wasi:http/incoming-handler@0.2.0`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InterfaceName {
    /// The package, `wasi:http`.
    pub package: String,
    /// The interface, `incoming-handler`.
    pub interface: String,
    /// The package's version, if it has one.
    pub version: Option<semver::Version>,
}

impl InterfaceName {
    /// Parses `ns:pkg/iface[@version]` (nested namespaces allowed:
    /// `ns:a:b/iface`).
    pub fn parse(text: &str) -> Option<InterfaceName> {
        let (path, version) = match text.split_once('@') {
            Some((path, version)) => (path, Some(semver::Version::parse(version).ok()?)),
            None => (text, None),
        };
        let (package, interface) = path.rsplit_once('/')?;
        let well_formed = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        };
        let (namespace, name) = package.split_once(':')?;
        if !well_formed(namespace) || !name.split(':').all(well_formed) || !well_formed(interface) {
            return None;
        }
        Some(InterfaceName {
            package: package.to_owned(),
            interface: interface.to_owned(),
            version,
        })
    }

    /// `package/interface`, without the version.
    pub fn unversioned(&self) -> String {
        format!("{}/{}", self.package, self.interface)
    }
}

impl std::fmt::Display for InterfaceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.package, self.interface)?;
        if let Some(version) = &self.version {
            write!(f, "@{version}")?;
        }
        Ok(())
    }
}

/// A world's imports and exports: interfaces by their ids, and functions
/// or inline interfaces by their names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct World {
    /// Interfaces imported.
    pub imports: Vec<InterfaceName>,
    /// Interfaces exported (for a WIT package: the interfaces it defines).
    pub exports: Vec<InterfaceName>,
    /// Imported functions and inline interfaces, by name.
    pub imported_names: Vec<String>,
    /// Exported functions and inline interfaces, by name.
    pub exported_names: Vec<String>,
    /// For a WIT package: the worlds it defines, with what each imports
    /// and exports (a component "satisfies" a world when it imports
    /// nothing else).
    #[serde(default)]
    pub defined: Vec<DefinedWorld>,
}

/// A world a WIT package defines.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DefinedWorld {
    /// `ns:pkg/world@version`.
    pub id: String,
    /// The interfaces it imports.
    pub imports: Vec<InterfaceName>,
    /// The interfaces it exports.
    pub exports: Vec<InterfaceName>,
}

impl World {
    /// For a WIT package: the ids of the worlds it defines
    /// (`ns:pkg/world@version`).
    pub fn world_ids(&self) -> impl Iterator<Item = &str> {
        self.defined.iter().map(|w| w.id.as_str())
    }

    /// A digest of the world's shape (`sha256:<hex>`): every import and
    /// export, interfaces with their versions, sorted, one per line. Two
    /// releases with the same digest import and export the same things.
    pub fn digest(&self) -> String {
        let mut lines: Vec<String> = Vec::new();
        for (kind, list) in [("import", &self.imports), ("export", &self.exports)] {
            lines.extend(list.iter().map(|i| format!("{kind} {i}")));
        }
        for (kind, list) in [
            ("import-name", &self.imported_names),
            ("export-name", &self.exported_names),
        ] {
            lines.extend(list.iter().map(|n| format!("{kind} {n}")));
        }
        lines.extend(self.world_ids().map(|id| format!("world {id}")));
        lines.sort();
        let mut text = lines.join("\n");
        text.push('\n');
        let digest = <sha2::Sha256 as sha2::Digest>::digest(text.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }
}

/// The legacy `registry-metadata` section (JSON), read from old components.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LegacyMetadata {
    /// Authors.
    pub authors: Vec<String>,
    /// Description.
    pub description: Option<String>,
    /// SPDX license expression.
    pub license: Option<String>,
    /// Links: (kind, URL).
    pub links: Vec<(String, String)>,
    /// Categories (indexed as keywords).
    pub categories: Vec<String>,
}

/// What a binary says about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentInfo {
    /// Component, WIT package or core module.
    pub kind: Kind,
    /// The `component-name` (or module `name`) section.
    pub name: Option<String>,
    /// `authors`.
    pub authors: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `licenses` (an SPDX expression).
    pub licenses: Option<String>,
    /// `source` (a URL).
    pub source: Option<String>,
    /// `homepage` (a URL).
    pub homepage: Option<String>,
    /// `revision`.
    pub revision: Option<String>,
    /// `version`.
    pub version: Option<String>,
    /// The `producers` section.
    pub producers: Vec<Producer>,
    /// Whether it carries a dependency list (`.dep-v0`).
    pub has_dependencies: bool,
    /// The legacy `registry-metadata` section, if present.
    pub legacy: Option<LegacyMetadata>,
    /// The world (components and WIT packages).
    pub world: Option<World>,
    /// What could not be read, in words.
    pub problems: Vec<String>,
}

impl ComponentInfo {
    /// The license: the `licenses` section, else the legacy one.
    pub fn license(&self) -> Option<&str> {
        self.licenses
            .as_deref()
            .or_else(|| self.legacy.as_ref().and_then(|l| l.license.as_deref()))
    }

    /// The description: the `description` section, else the legacy one.
    pub fn summary(&self) -> Option<&str> {
        self.description
            .as_deref()
            .or_else(|| self.legacy.as_ref().and_then(|l| l.description.as_deref()))
    }

    /// The source URL: the `source` section, else the legacy repository
    /// link.
    pub fn source_url(&self) -> Option<&str> {
        self.source.as_deref().or_else(|| {
            self.legacy.as_ref().and_then(|l| {
                l.links
                    .iter()
                    .find(|(kind, _)| kind.eq_ignore_ascii_case("repository"))
                    .map(|(_, url)| url.as_str())
            })
        })
    }
}

/// Why a binary says nothing at all.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// Not WebAssembly.
    #[error("not a WebAssembly module or component: {0}")]
    NotWasm(String),
}

/// Reads what `bytes` (a component, WIT package or core module) say about
/// themselves.
pub fn extract(bytes: &[u8]) -> Result<ComponentInfo, MetadataError> {
    let kind = match wasmparser::Parser::new(0).parse(bytes, true) {
        Ok(wasmparser::Chunk::Parsed {
            payload: wasmparser::Payload::Version { encoding, .. },
            ..
        }) => match encoding {
            wasmparser::Encoding::Module => Kind::Module,
            wasmparser::Encoding::Component => Kind::Component,
        },
        Ok(_) => return Err(MetadataError::NotWasm("no WebAssembly header".into())),
        Err(e) => return Err(MetadataError::NotWasm(e.to_string())),
    };
    let mut info = ComponentInfo {
        kind,
        ..ComponentInfo::default()
    };
    let outer = outer(bytes);
    sections(bytes, &outer, &mut info);
    match outer.legacy {
        Some(Ok(legacy)) => info.legacy = Some(legacy),
        Some(Err(problem)) => info.problems.push(problem),
        None => {}
    }
    if kind == Kind::Component {
        // A component's world is the names of its own imports and
        // exports: read from them, it takes no type checking (the
        // content door validated the bytes) and costs a fraction of
        // decoding. What the names do not settle goes to the decoder.
        if let Some(world) = outer.names.world(&mut info.problems) {
            info.world = Some(world);
            return Ok(info);
        }
        decode_world(bytes, &mut info);
    }
    Ok(info)
}

/// A component's world read from the names of its own imports and
/// exports, as [`extract`] reads it; `None` when the names do not settle
/// it (then [`extract`] asks the decoder, [`decode_world`]).
pub fn world_from_names(bytes: &[u8], problems: &mut Vec<String>) -> Option<World> {
    outer(bytes).names.world(problems)
}

/// The world as `wit-parser`'s decoder reads it (for WIT packages, and
/// components whose names alone do not settle their world).
///
/// Public so that tests can hold the fast reading of [`extract`] to it.
pub fn decode_world(bytes: &[u8], info: &mut ComponentInfo) {
    match wit_parser::decoding::decode(bytes) {
        Ok(DecodedWasm::Component(resolve, world)) => {
            info.world = Some(component_world(&resolve, world, &mut info.problems));
        }
        Ok(DecodedWasm::WitPackage(resolve, package)) => {
            info.kind = Kind::WitPackage;
            info.world = Some(package_world(&resolve, package, &mut info.problems));
        }
        Err(e) => info
            .problems
            .push(format!("the world cannot be read: {e:#}")),
    }
}

/// The custom sections `wasm-metadata` reads metadata from.
const METADATA_SECTIONS: &[&str] = &[
    "name",
    "component-name",
    "producers",
    "authors",
    "description",
    "licenses",
    "source",
    "homepage",
    "revision",
    "version",
    ".dep-v0",
];

/// The per-field sections of the outermost component or module, each
/// read by `wasm-metadata` from a binary of that section alone (the first
/// 8 bytes of `bytes` and the section): the crate walks every nested
/// module of a whole binary for sections not used here, and one section
/// it refuses would fail them all.
fn sections(bytes: &[u8], outer: &Outer<'_>, info: &mut ComponentInfo) {
    let Some(header) = bytes.get(..8) else {
        return;
    };
    for (name, section) in &outer.metadata {
        let binary = [header, section].concat();
        let payload = match wasm_metadata::Payload::from_binary(&binary) {
            Ok(payload) => payload,
            Err(e) => {
                info.problems
                    .push(format!("the `{name}` section cannot be read: {e:#}"));
                continue;
            }
        };
        // One section sets one field; a later one of a name replaces it.
        let m = payload.metadata();
        fn text<T: ToString>(field: &Option<T>) -> Option<String> {
            field.as_ref().map(ToString::to_string)
        }
        info.name = m.name.clone().or(info.name.take());
        info.authors = text(&m.authors).or(info.authors.take());
        info.description = text(&m.description).or(info.description.take());
        info.licenses = text(&m.licenses).or(info.licenses.take());
        info.source = text(&m.source).or(info.source.take());
        info.homepage = text(&m.homepage).or(info.homepage.take());
        info.revision = text(&m.revision).or(info.revision.take());
        info.version = text(&m.version).or(info.version.take());
        info.has_dependencies |= m.dependencies.is_some();
        if let Some(producers) = &m.producers {
            info.producers.clear();
            for (field, entries) in producers.iter() {
                for (name, version) in entries.iter() {
                    info.producers.push(Producer {
                        field: field.clone(),
                        name: name.clone(),
                        version: version.clone(),
                    });
                }
            }
        }
    }
}

/// What one pass over the outermost binary's own sections finds (nested
/// modules and components are skipped, not parsed).
#[derive(Default)]
struct Outer<'a> {
    /// The legacy `registry-metadata` section, or why it cannot be read.
    legacy: Option<Result<LegacyMetadata, String>>,
    /// The component's world read from its import and export names, when
    /// those names settle it (see [`Names`]).
    names: Names,
    /// The [`METADATA_SECTIONS`] by name, each as it is in the binary
    /// (id, size, name and data).
    metadata: Vec<(&'a str, &'a [u8])>,
}

/// A component's imports and exports by name.
#[derive(Default)]
struct Names {
    imports: Vec<(String, ExternKind)>,
    exports: Vec<(String, ExternKind)>,
    /// A name or kind that only the WIT decoder may interpret (a value,
    /// module or component import or export, a name that is neither an
    /// interface nor a plain label): the world is left to the decoder.
    unsure: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ExternKind {
    Func,
    Instance,
    Type,
}

impl Names {
    /// Notes an import or export: its name, and its kind if the reading
    /// by names knows it (`None`, or a name neither an interface nor a
    /// plain label, leaves the world to the decoder).
    fn note(&mut self, export: bool, name: &str, kind: Option<ExternKind>) {
        let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        let Some(kind) = kind.filter(|_| plain || InterfaceName::parse(name).is_some()) else {
            self.unsure = true;
            return;
        };
        let list = if export {
            &mut self.exports
        } else {
            &mut self.imports
        };
        list.push((name.to_owned(), kind));
    }
}

fn outer(bytes: &[u8]) -> Outer<'_> {
    let mut out = Outer::default();
    let mut parser = wasmparser::Parser::new(0);
    let mut rest = bytes;
    loop {
        let (section, payload) = match parser.parse(rest, true) {
            Ok(wasmparser::Chunk::Parsed { consumed, payload }) => {
                // What the payload came from, its section header included.
                let (section, after) = rest.split_at(consumed.min(rest.len()));
                rest = after;
                (section, payload)
            }
            // Truncated or malformed (`eof` given, so no more data comes):
            // whatever was found stands, the decoder judges the world.
            Ok(wasmparser::Chunk::NeedMoreData(_)) | Err(_) => {
                out.names.unsure = true;
                return out;
            }
        };
        match payload {
            wasmparser::Payload::ModuleSection {
                unchecked_range, ..
            }
            | wasmparser::Payload::ComponentSection {
                unchecked_range, ..
            } => {
                // The parser has stepped over it; the input follows.
                rest = rest.get(unchecked_range.len()..).unwrap_or_default();
            }
            wasmparser::Payload::CodeSectionStart { size, .. } => {
                parser.skip_section();
                rest = rest.get(size as usize..).unwrap_or_default();
            }
            wasmparser::Payload::ComponentImportSection(imports) => {
                for import in imports {
                    match import {
                        Ok(import) => {
                            let kind = match import.ty {
                                wasmparser::ComponentTypeRef::Func(_) => Some(ExternKind::Func),
                                wasmparser::ComponentTypeRef::Instance(_) => {
                                    Some(ExternKind::Instance)
                                }
                                wasmparser::ComponentTypeRef::Type(_) => Some(ExternKind::Type),
                                _ => None,
                            };
                            out.names.note(false, import.name.name, kind);
                        }
                        Err(_) => out.names.unsure = true,
                    }
                }
            }
            wasmparser::Payload::ComponentExportSection(exports) => {
                for export in exports {
                    match export {
                        Ok(export) => {
                            let kind = match export.kind {
                                wasmparser::ComponentExternalKind::Func => Some(ExternKind::Func),
                                wasmparser::ComponentExternalKind::Instance => {
                                    Some(ExternKind::Instance)
                                }
                                wasmparser::ComponentExternalKind::Type => Some(ExternKind::Type),
                                _ => None,
                            };
                            out.names.note(true, export.name.name, kind);
                        }
                        Err(_) => out.names.unsure = true,
                    }
                }
            }
            wasmparser::Payload::CustomSection(custom)
                if METADATA_SECTIONS.contains(&custom.name()) =>
            {
                out.metadata.push((custom.name(), section));
            }
            wasmparser::Payload::CustomSection(custom)
                if custom.name() == "registry-metadata" && out.legacy.is_none() =>
            {
                let data = custom.data();
                out.legacy = Some(if data.len() > MAX_LEGACY_SECTION {
                    Err(format!(
                        "the registry-metadata section is over {MAX_LEGACY_SECTION} bytes"
                    ))
                } else {
                    parse_legacy(data).map_err(|e| format!("the registry-metadata section: {e}"))
                });
            }
            wasmparser::Payload::End(_) => return out,
            _ => {}
        }
    }
}

impl Names {
    /// The world these names make, as the WIT decoder would make it;
    /// `None` when only the decoder can tell: a name or kind it alone
    /// interprets, or nothing but exported types (the shape of a WIT
    /// package, whose worlds and interfaces are inside the types).
    fn world(&self, problems: &mut Vec<String>) -> Option<World> {
        let only_types = self.imports.is_empty()
            && self
                .exports
                .iter()
                .all(|(_, kind)| *kind == ExternKind::Type);
        if self.unsure || (only_types && !self.exports.is_empty()) {
            return None;
        }
        let mut world = World::default();
        let mut split = |items: &[(String, ExternKind)],
                         interfaces: &mut Vec<InterfaceName>,
                         names: &mut Vec<String>,
                         what: &str| {
            for (name, kind) in items {
                if interfaces.len() + names.len() >= MAX_WORLD_ITEMS {
                    problems.push(format!(
                        "the world has over {MAX_WORLD_ITEMS} {what}: the rest are not indexed"
                    ));
                    break;
                }
                match kind {
                    // Types are not part of a world's shape (as decoded).
                    ExternKind::Type => {}
                    ExternKind::Instance => match InterfaceName::parse(name) {
                        Some(interface) => interfaces.push(interface),
                        None => names.push(name.clone()),
                    },
                    ExternKind::Func => names.push(name.clone()),
                }
            }
        };
        split(
            &self.imports,
            &mut world.imports,
            &mut world.imported_names,
            "imports",
        );
        split(
            &self.exports,
            &mut world.exports,
            &mut world.exported_names,
            "exports",
        );
        Some(world)
    }
}

fn parse_legacy(data: &[u8]) -> Result<LegacyMetadata, String> {
    #[derive(Deserialize)]
    struct Link {
        ty: String,
        value: String,
    }
    #[derive(Deserialize)]
    struct Raw {
        #[serde(default)]
        authors: Option<Vec<String>>,
        #[serde(default)]
        description: Option<String>,
        #[serde(default)]
        license: Option<String>,
        #[serde(default)]
        links: Option<Vec<Link>>,
        #[serde(default)]
        categories: Option<Vec<String>>,
    }
    let raw: Raw = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    Ok(LegacyMetadata {
        authors: raw.authors.unwrap_or_default(),
        description: raw.description,
        license: raw.license,
        links: raw
            .links
            .unwrap_or_default()
            .into_iter()
            .map(|l| (l.ty, l.value))
            .collect(),
        categories: raw.categories.unwrap_or_default(),
    })
}

fn component_world(
    resolve: &Resolve,
    id: wit_parser::WorldId,
    problems: &mut Vec<String>,
) -> World {
    // (A component does not carry its world's name: the decoder calls it
    // `root`.)
    let world = &resolve.worlds[id];
    let mut out = World::default();
    let mut split = |items: &wit_parser::IndexMap<WorldKey, WorldItem>,
                     interfaces: &mut Vec<InterfaceName>,
                     names: &mut Vec<String>,
                     what: &str| {
        for (key, item) in items {
            if interfaces.len() + names.len() >= MAX_WORLD_ITEMS {
                problems.push(format!(
                    "the world has over {MAX_WORLD_ITEMS} {what}: the rest are not indexed"
                ));
                break;
            }
            match (key, item) {
                (_, WorldItem::Type { .. }) => {}
                (WorldKey::Interface(iface), _) => {
                    match resolve
                        .id_of(*iface)
                        .as_deref()
                        .and_then(InterfaceName::parse)
                    {
                        Some(name) => interfaces.push(name),
                        None => names.push(resolve.name_world_key(key)),
                    }
                }
                (WorldKey::Name(name), _) => names.push(name.clone()),
            }
        }
    };
    split(
        &world.imports,
        &mut out.imports,
        &mut out.imported_names,
        "imports",
    );
    split(
        &world.exports,
        &mut out.exports,
        &mut out.exported_names,
        "exports",
    );
    out
}

fn package_world(
    resolve: &Resolve,
    id: wit_parser::PackageId,
    problems: &mut Vec<String>,
) -> World {
    let package = &resolve.packages[id];
    let mut out = World::default();
    for (_, iface) in package.interfaces.iter().take(MAX_WORLD_ITEMS) {
        if let Some(name) = resolve
            .id_of(*iface)
            .as_deref()
            .and_then(InterfaceName::parse)
        {
            out.exports.push(name);
        }
    }
    for (name, world) in package.worlds.iter().take(MAX_WORLD_ITEMS) {
        let world_id = resolve.id_of_name(id, name);
        let shape = component_world(resolve, *world, problems);
        out.defined.push(DefinedWorld {
            id: world_id,
            imports: shape.imports,
            exports: shape.exports,
        });
    }
    if package.interfaces.len() > MAX_WORLD_ITEMS || package.worlds.len() > MAX_WORLD_ITEMS {
        problems.push(format!(
            "the package defines over {MAX_WORLD_ITEMS} interfaces or worlds: the rest are not \
             indexed"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_parse() {
        let name = InterfaceName::parse("wasi:http/incoming-handler@0.2.0").expect("parses");
        assert_eq!(name.package, "wasi:http");
        assert_eq!(name.interface, "incoming-handler");
        assert_eq!(name.version, Some(semver::Version::new(0, 2, 0)));
        assert_eq!(name.to_string(), "wasi:http/incoming-handler@0.2.0");
        assert_eq!(name.unversioned(), "wasi:http/incoming-handler");
        assert!(InterfaceName::parse("wasi:cli/run").is_some());
        for bad in [
            "run",
            "wasi/run",
            "Wasi:cli/run",
            "wasi:cli/run@x",
            ":cli/run",
            "wasi:/run",
        ] {
            assert!(InterfaceName::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn garbage_is_not_wasm() {
        assert!(matches!(extract(b"hello"), Err(MetadataError::NotWasm(_))));
        assert!(matches!(extract(b""), Err(MetadataError::NotWasm(_))));
    }
}
