//! Metadata and worlds read from components built here (wit-component's
//! dummy implementation of a world, then wasm-metadata's sections): no
//! committed binaries.

use cairn_index::metadata::{extract, InterfaceName, Kind};
use cairn_interop::components::{component, wit_package, Meta};

const WASI: &str = r#"
package wasi:cli@0.2.0;
interface environment { get-arguments: func() -> list<string>; }
interface run { run: func() -> result; }
"#;

const GREETER: &str = r#"
package acme:greeter@1.2.3;
interface greet { hello: func(name: string) -> string; }
world greeter {
    import wasi:cli/environment@0.2.0;
    import log: func(message: string);
    export greet;
    export wasi:cli/run@0.2.0;
}
"#;

#[test]
fn a_components_sections_and_world_are_read() {
    let bytes = component(
        &[WASI],
        GREETER,
        &Meta {
            name: Some("acme:greeter"),
            description: Some("Says hello"),
            license: Some("Apache-2.0 OR MIT"),
            source: Some("https://git.acme.test/greeter"),
            processed_by: Some(("cairn-test", "1.0.0")),
            ..Meta::default()
        },
    );
    let info = extract(&bytes).expect("extracts");
    assert_eq!(info.kind, Kind::Component);
    assert_eq!(info.name.as_deref(), Some("acme:greeter"));
    assert_eq!(info.description.as_deref(), Some("Says hello"));
    assert_eq!(info.license(), Some("Apache-2.0 OR MIT"));
    assert_eq!(info.source_url(), Some("https://git.acme.test/greeter"));
    assert!(info
        .producers
        .iter()
        .any(|p| p.field == "processed-by" && p.name == "cairn-test" && p.version == "1.0.0"));
    let world = info.world.expect("a world");
    assert_eq!(
        world.imports,
        [InterfaceName::parse("wasi:cli/environment@0.2.0").expect("name")]
    );
    assert_eq!(world.imported_names, ["log"]);
    let exports: Vec<String> = world.exports.iter().map(ToString::to_string).collect();
    assert_eq!(exports, ["acme:greeter/greet@1.2.3", "wasi:cli/run@0.2.0"]);
    assert!(info.problems.is_empty(), "{:?}", info.problems);
}

#[test]
fn a_wit_package_lists_its_interfaces_and_worlds() {
    let bytes = wit_package(&[WASI], GREETER);
    // Its names alone do not tell it from a component: the decoder reads it.
    assert!(cairn_index::metadata::world_from_names(&bytes, &mut Vec::new()).is_none());
    let info = extract(&bytes).expect("extracts");
    assert_eq!(info.kind, Kind::WitPackage);
    let world = info.world.expect("a world");
    let exports: Vec<String> = world.exports.iter().map(ToString::to_string).collect();
    assert_eq!(exports, ["acme:greeter/greet@1.2.3"]);
    assert_eq!(
        world.world_ids().collect::<Vec<_>>(),
        ["acme:greeter/greeter@1.2.3"]
    );
    let defined = &world.defined[0];
    assert_eq!(defined.id, "acme:greeter/greeter@1.2.3");
    let imports: Vec<String> = defined.imports.iter().map(ToString::to_string).collect();
    assert_eq!(imports, ["wasi:cli/environment@0.2.0"]);
    assert!(world.imports.is_empty());
}

#[test]
fn a_core_module_and_a_legacy_section() {
    // A core module: sections only, no world.
    let mut module = wasm_encoder::Module::new();
    let legacy = br#"{"authors":["Ann <ann@acme.test>"],"description":"old style","license":"MIT","links":[{"ty":"Repository","value":"https://git.acme.test/old"}],"categories":["greeting"]}"#;
    module.section(&wasm_encoder::CustomSection {
        name: "registry-metadata".into(),
        data: legacy.as_slice().into(),
    });
    let bytes = module.finish();
    let info = extract(&bytes).expect("extracts");
    assert_eq!(info.kind, Kind::Module);
    assert!(info.world.is_none());
    let old = info.legacy.clone().expect("legacy section");
    assert_eq!(old.categories, ["greeting"]);
    assert_eq!(info.license(), Some("MIT"));
    assert_eq!(info.summary(), Some("old style"));
    assert_eq!(info.source_url(), Some("https://git.acme.test/old"));

    // A broken legacy section is named, not fatal.
    let mut module = wasm_encoder::Module::new();
    module.section(&wasm_encoder::CustomSection {
        name: "registry-metadata".into(),
        data: b"{not json".as_slice().into(),
    });
    let info = extract(&module.finish()).expect("extracts");
    assert!(info.legacy.is_none());
    assert!(
        info.problems[0].contains("registry-metadata"),
        "{:?}",
        info.problems
    );
}

/// `extract` reads a component's world from its import and export names;
/// on every shape of world here that reading equals `wit-parser`'s decoder.
#[test]
fn the_world_read_from_names_is_the_decoders() {
    let worlds = [
        GREETER.to_owned(),
        // Only imports; an inline interface, a function, types used by
        // functions (a type import), a resource.
        r#"package acme:a@0.1.0;
        interface store { resource bucket { get: func(key: string) -> option<list<u8>>; } }
        world a {
            import wasi:cli/environment@0.2.0;
            import store;
            import inline: interface { ping: func(); }
            record point { x: u32, y: u32 }
            import draw: func(p: point);
        }"#
        .to_owned(),
        // Only exports, of an unversioned package, and a function.
        r#"package acme:b;
        interface api { call: func(x: u32) -> u32; }
        world b { export api; export run: func(); export wasi:cli/run@0.2.0; }"#
            .to_owned(),
        // Nothing at all.
        "package acme:c@1.0.0; world c {}".to_owned(),
        // Many of each.
        {
            let mut text = String::from("package acme:many@2.0.0;\n");
            for i in 0..40 {
                text.push_str(&format!("interface i{i} {{ f: func(); }}\n"));
            }
            text.push_str("world many {\n");
            for i in 0..20 {
                text.push_str(&format!("import i{i}; import f{i}: func();\n"));
            }
            for i in 20..40 {
                text.push_str(&format!("export i{i}; export g{i}: func();\n"));
            }
            text.push_str("}\n");
            text
        },
    ];
    for wit in &worlds {
        let bytes = component(&[WASI], wit, &Meta::default());
        let read = extract(&bytes).expect("extracts");
        assert_eq!(read.kind, Kind::Component, "{wit}");
        let mut problems = Vec::new();
        let by_names = cairn_index::metadata::world_from_names(&bytes, &mut problems)
            .expect("the names settle a component's world");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(Some(&by_names), read.world.as_ref());
        let mut decoded = cairn_index::metadata::ComponentInfo::default();
        cairn_index::metadata::decode_world(&bytes, &mut decoded);
        assert!(decoded.problems.is_empty(), "{:?}", decoded.problems);
        assert!(read.problems.is_empty(), "{:?}", read.problems);
        assert_eq!(read.world, decoded.world, "{wit}");
        let world = read.world.expect("a world");
        assert_eq!(
            Some(world.digest()),
            decoded.world.map(|w| w.digest()),
            "{wit}"
        );
    }
}

/// A metadata section `wasm-metadata` refuses is named; the other
/// sections are still read.
#[test]
fn a_refused_section_leaves_the_others() {
    let mut bytes = component(
        &[WASI],
        GREETER,
        &Meta {
            description: Some("Says hello"),
            source: Some("https://git.acme.test/greeter"),
            ..Meta::default()
        },
    );
    // A `licenses` section that is no SPDX expression, appended (custom
    // sections may stand anywhere).
    let name = b"licenses";
    let data = b"not a license ((";
    bytes.push(0);
    bytes.push((1 + name.len() + data.len()) as u8);
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(data);
    let info = extract(&bytes).expect("extracts");
    assert_eq!(info.description.as_deref(), Some("Says hello"));
    assert_eq!(info.source_url(), Some("https://git.acme.test/greeter"));
    assert_eq!(info.licenses, None);
    assert!(
        info.problems.iter().any(|p| p.contains("`licenses`")),
        "{:?}",
        info.problems
    );
    assert!(info.world.is_some());
}
