//! Whether a new version's WIT keeps what an earlier version of the same
//! semver series promised: the server-side semver gate.
//!
//! Each binary is reduced to its *surface*, a flat map from an item's path
//! (`export wasi:http/incoming-handler#func handle`) to its canonical
//! signature, split into what it provides (exports, and everything a WIT
//! package defines) and what it requires (a component's imports). A newer
//! version in the same series may add to what it provides and drop
//! requirements; it breaks its users when it removes or changes something
//! it provided, or requires something more (a host of the earlier version
//! need not supply it). Interface versions are compared the semver way:
//! `@0.2.0` may become `@0.2.3`, not `@0.3.0`.
//!
//! Pure: bytes in, findings out.

use std::collections::BTreeMap;
use std::fmt;

use wasmparser_new as wasmparser;
use wit_parser::decoding::DecodedWasm;
use wit_parser::{
    Function, Handle, Interface, Resolve, Type, TypeDefKind, TypeId, TypeOwner, WorldItem, WorldKey,
};

/// One thing a newer version breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Break {
    /// The item, e.g. `export acme:app/api#func run`.
    pub item: String,
    /// What happened to it, in words.
    pub what: String,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", self.item, self.what)
    }
}

/// Why two binaries cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum CompatError {
    /// One side's WIT cannot be decoded.
    #[error("the WIT of the {which} version cannot be read: {message}")]
    Unreadable {
        /// `earlier` or `new`.
        which: &'static str,
        /// The decoder's words.
        message: String,
    },
    /// One is a component and the other a WIT package.
    #[error("the earlier version is a {earlier} and the new one a {new}")]
    KindChanged {
        /// What the earlier version is.
        earlier: &'static str,
        /// What the new one is.
        new: &'static str,
    },
}

/// What a binary offers and needs.
#[derive(Debug, Default)]
struct Surface {
    kind: &'static str,
    /// Item path → canonical signature.
    provides: BTreeMap<String, String>,
    /// Unversioned interface (or function) name → its version, for
    /// exports and interfaces.
    provided_versions: BTreeMap<String, Option<semver::Version>>,
    /// Unversioned import name → its version.
    requires: BTreeMap<String, Option<semver::Version>>,
}

/// What `new` breaks of what `earlier` promised; empty when `new` is a
/// compatible successor. Core modules (no WIT) have nothing to break.
pub fn breaks(earlier: &[u8], new: &[u8]) -> Result<Vec<Break>, CompatError> {
    let (Some(old), Some(new)) = (surface(earlier, "earlier")?, surface(new, "new")?) else {
        return Ok(Vec::new());
    };
    if old.kind != new.kind {
        return Err(CompatError::KindChanged {
            earlier: old.kind,
            new: new.kind,
        });
    }
    let mut found = Vec::new();
    for (name, old_version) in &old.provided_versions {
        match new.provided_versions.get(name) {
            None => found.push(Break {
                item: at(name, old_version),
                what: "was removed".into(),
            }),
            Some(new_version) if !successor(old_version, new_version) => found.push(Break {
                item: at(name, old_version),
                what: format!(
                    "became `{}`, which is not semver-compatible",
                    at(name, new_version)
                ),
            }),
            Some(_) => {}
        }
    }
    for (item, signature) in &old.provides {
        // Items of a removed interface were reported with it.
        let owner = item.split('#').next().unwrap_or(item);
        if item.contains('#') && !new.provided_versions.contains_key(owner) {
            continue;
        }
        match new.provides.get(item) {
            None => found.push(Break {
                item: item.clone(),
                what: "was removed".into(),
            }),
            Some(now) if now != signature => found.push(Break {
                item: item.clone(),
                what: format!("changed from `{signature}` to `{now}`"),
            }),
            Some(_) => {}
        }
    }
    for (name, new_version) in &new.requires {
        match old.requires.get(name) {
            None => found.push(Break {
                item: format!("import {}", at(name, new_version)),
                what: "is new: hosts of the earlier version need not provide it".into(),
            }),
            Some(old_version) if !successor(old_version, new_version) => found.push(Break {
                item: format!("import {}", at(name, new_version)),
                what: format!(
                    "needs a version not semver-compatible with the earlier `{}`",
                    at(name, old_version)
                ),
            }),
            Some(_) => {}
        }
    }
    Ok(found)
}

fn at(name: &str, version: &Option<semver::Version>) -> String {
    match version {
        Some(v) => format!("{name}@{v}"),
        None => name.to_owned(),
    }
}

/// Whether `new` may stand where `old` stood: equal, or a later version of
/// the same series (same major; same minor below 1.0; same patch below 0.1).
fn successor(old: &Option<semver::Version>, new: &Option<semver::Version>) -> bool {
    match (old, new) {
        (None, None) => true,
        (Some(old), Some(new)) => {
            let series = if old.major > 0 {
                old.major == new.major
            } else if old.minor > 0 {
                new.major == 0 && old.minor == new.minor
            } else {
                new.major == 0 && new.minor == 0 && old.patch == new.patch
            };
            series && new >= old
        }
        _ => false,
    }
}

/// `ns:pkg/iface@1.2.3` → (`ns:pkg/iface`, `1.2.3`).
fn split_version(name: &str) -> (String, Option<semver::Version>) {
    match name.rsplit_once('@') {
        Some((base, version)) => match version.parse() {
            Ok(v) => (base.to_owned(), Some(v)),
            Err(_) => (name.to_owned(), None),
        },
        None => (name.to_owned(), None),
    }
}

fn surface(bytes: &[u8], which: &'static str) -> Result<Option<Surface>, CompatError> {
    let is_component = matches!(
        wasmparser::Parser::new(0).parse(bytes, true),
        Ok(wasmparser::Chunk::Parsed {
            payload: wasmparser::Payload::Version {
                encoding: wasmparser::Encoding::Component,
                ..
            },
            ..
        })
    );
    if !is_component {
        return Ok(None);
    }
    let decoded = wit_parser::decoding::decode(bytes).map_err(|e| CompatError::Unreadable {
        which,
        message: format!("{e:#}"),
    })?;
    let mut s = Surface::default();
    match decoded {
        DecodedWasm::Component(resolve, world) => {
            s.kind = "component";
            let world = &resolve.worlds[world];
            for (key, item) in &world.exports {
                provide_item(&resolve, "export", key, item, &mut s);
            }
            for (key, item) in &world.imports {
                match item {
                    WorldItem::Interface { .. } | WorldItem::Function(_) => {
                        let (base, version) = split_version(&resolve.name_world_key(key));
                        s.requires.insert(base, version);
                    }
                    WorldItem::Type { .. } => {}
                }
            }
        }
        DecodedWasm::WitPackage(resolve, package) => {
            s.kind = "WIT package";
            let package = &resolve.packages[package];
            for (name, id) in &package.interfaces {
                let base = format!("interface {name}");
                s.provided_versions.insert(base.clone(), None);
                provide_interface(&resolve, &base, &resolve.interfaces[*id], &mut s);
            }
            for (name, id) in &package.worlds {
                let world = &resolve.worlds[*id];
                let base = format!("world {name}");
                s.provided_versions.insert(base.clone(), None);
                for (key, _) in &world.imports {
                    let (item, _) = split_version(&resolve.name_world_key(key));
                    s.provides
                        .insert(format!("{base}#import {item}"), "present".into());
                }
                for (key, _) in &world.exports {
                    let (item, _) = split_version(&resolve.name_world_key(key));
                    s.provides
                        .insert(format!("{base}#export {item}"), "present".into());
                }
            }
        }
    }
    Ok(Some(s))
}

fn provide_item(resolve: &Resolve, side: &str, key: &WorldKey, item: &WorldItem, s: &mut Surface) {
    let (name, version) = split_version(&resolve.name_world_key(key));
    let base = format!("{side} {name}");
    match item {
        WorldItem::Interface { id, .. } => {
            s.provided_versions.insert(base.clone(), version);
            provide_interface(resolve, &base, &resolve.interfaces[*id], s);
        }
        WorldItem::Function(f) => {
            s.provided_versions.insert(base.clone(), version);
            s.provides
                .insert(format!("{base}#func"), function(resolve, f));
        }
        WorldItem::Type { id, .. } => {
            s.provided_versions.insert(base.clone(), version);
            s.provides
                .insert(format!("{base}#type"), definition(resolve, *id));
        }
    }
}

fn provide_interface(resolve: &Resolve, base: &str, iface: &Interface, s: &mut Surface) {
    for (name, id) in &iface.types {
        s.provides
            .insert(format!("{base}#type {name}"), definition(resolve, *id));
    }
    for (name, f) in &iface.functions {
        s.provides
            .insert(format!("{base}#func {name}"), function(resolve, f));
    }
}

fn function(resolve: &Resolve, f: &Function) -> String {
    let params: Vec<String> = f
        .params
        .iter()
        .map(|p| format!("{}: {}", p.name, reference(resolve, &p.ty)))
        .collect();
    match &f.result {
        Some(result) => format!(
            "func({}) -> {}",
            params.join(", "),
            reference(resolve, result)
        ),
        None => format!("func({})", params.join(", ")),
    }
}

/// How a function or another type refers to `ty`: a named type by its
/// unversioned qualified name, an anonymous one by its structure.
fn reference(resolve: &Resolve, ty: &Type) -> String {
    let Type::Id(id) = ty else {
        return primitive(ty).to_owned();
    };
    let def = &resolve.types[*id];
    match &def.name {
        Some(name) => match def.owner {
            TypeOwner::Interface(owner) => match resolve.id_of(owner) {
                Some(qualified) => format!("{}.{name}", split_version(&qualified).0),
                None => name.clone(),
            },
            _ => name.clone(),
        },
        None => structure(resolve, *id),
    }
}

/// A named type's definition.
fn definition(resolve: &Resolve, id: TypeId) -> String {
    structure(resolve, id)
}

fn structure(resolve: &Resolve, id: TypeId) -> String {
    let r = |t: &Type| reference(resolve, t);
    let opt = |t: &Option<Type>| t.as_ref().map_or("_".to_owned(), r);
    match &resolve.types[id].kind {
        TypeDefKind::Record(record) => {
            let fields: Vec<String> = record
                .fields
                .iter()
                .map(|f| format!("{}: {}", f.name, r(&f.ty)))
                .collect();
            format!("record {{ {} }}", fields.join(", "))
        }
        TypeDefKind::Resource => "resource".into(),
        TypeDefKind::Handle(Handle::Own(t)) => format!("own<{}>", r(&Type::Id(*t))),
        TypeDefKind::Handle(Handle::Borrow(t)) => format!("borrow<{}>", r(&Type::Id(*t))),
        TypeDefKind::Flags(flags) => {
            let names: Vec<&str> = flags.flags.iter().map(|f| f.name.as_str()).collect();
            format!("flags {{ {} }}", names.join(", "))
        }
        TypeDefKind::Tuple(tuple) => {
            let types: Vec<String> = tuple.types.iter().map(r).collect();
            format!("tuple<{}>", types.join(", "))
        }
        TypeDefKind::Variant(variant) => {
            let cases: Vec<String> = variant
                .cases
                .iter()
                .map(|c| match &c.ty {
                    Some(t) => format!("{}({})", c.name, r(t)),
                    None => c.name.clone(),
                })
                .collect();
            format!("variant {{ {} }}", cases.join(", "))
        }
        TypeDefKind::Enum(e) => {
            let cases: Vec<&str> = e.cases.iter().map(|c| c.name.as_str()).collect();
            format!("enum {{ {} }}", cases.join(", "))
        }
        TypeDefKind::Option(t) => format!("option<{}>", r(t)),
        TypeDefKind::Result(result) => format!("result<{}, {}>", opt(&result.ok), opt(&result.err)),
        TypeDefKind::List(t) => format!("list<{}>", r(t)),
        TypeDefKind::Map(k, v) => format!("map<{}, {}>", r(k), r(v)),
        TypeDefKind::FixedLengthList(t, n) => format!("list<{}, {n}>", r(t)),
        TypeDefKind::Future(t) => format!("future<{}>", opt(t)),
        TypeDefKind::Stream(t) => format!("stream<{}>", opt(t)),
        TypeDefKind::Type(t) => format!("= {}", r(t)),
        TypeDefKind::Unknown => "unknown".into(),
    }
}

fn primitive(ty: &Type) -> &'static str {
    match ty {
        Type::Bool => "bool",
        Type::U8 => "u8",
        Type::U16 => "u16",
        Type::U32 => "u32",
        Type::U64 => "u64",
        Type::S8 => "s8",
        Type::S16 => "s16",
        Type::S32 => "s32",
        Type::S64 => "s64",
        Type::F32 => "f32",
        Type::F64 => "f64",
        Type::Char => "char",
        Type::String => "string",
        Type::ErrorContext => "error-context",
        Type::Id(_) => "type",
    }
}

#[cfg(test)]
mod tests {
    use super::successor;

    fn v(text: &str) -> Option<semver::Version> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn successors_stay_in_their_series() {
        assert!(successor(&v("0.2.0"), &v("0.2.3")));
        assert!(!successor(&v("0.2.3"), &v("0.2.0")));
        assert!(!successor(&v("0.2.0"), &v("0.3.0")));
        assert!(successor(&v("1.2.0"), &v("1.9.0")));
        assert!(!successor(&v("1.2.0"), &v("2.0.0")));
        assert!(!successor(&v("0.0.1"), &v("0.0.2")));
        assert!(successor(&None, &None));
        assert!(!successor(&v("1.0.0"), &None));
    }
}
