//! The semver gate's comparison (issue 18): what a newer version of a
//! component or WIT package breaks of the previous one, found from real
//! binaries built here.

use cairn_index::compat::breaks;
use cairn_interop::components::{component, wit_package, Meta};

const HTTP_020: &str = "package wasi:http@0.2.0;
interface incoming-handler { handle: func(); }
interface outgoing-handler { send: func(); }";
const HTTP_023: &str = "package wasi:http@0.2.3;
interface incoming-handler { handle: func(); }
interface outgoing-handler { send: func(); }";
const HTTP_030: &str = "package wasi:http@0.3.0;
interface incoming-handler { handle: func(); }";
const FS: &str = "package wasi:filesystem@0.2.0;
interface types { open: func(path: string) -> u32; }";

fn found(old: &[u8], new: &[u8]) -> Vec<String> {
    breaks(old, new)
        .expect("comparable")
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn components_may_grow_exports_and_move_within_a_series() {
    let base = component(
        &[HTTP_020],
        "package acme:app@1.0.0; world app {
            import wasi:http/outgoing-handler@0.2.0;
            export wasi:http/incoming-handler@0.2.0; }",
        &Meta::default(),
    );
    // Same world at newer patch versions of WASI: compatible.
    let newer = component(
        &[HTTP_023],
        "package acme:app@1.1.0; world app {
            import wasi:http/outgoing-handler@0.2.3;
            export wasi:http/incoming-handler@0.2.3; }",
        &Meta::default(),
    );
    assert_eq!(found(&base, &newer), Vec::<String>::new());
    // Dropping an import is fine; exporting at 0.3 breaks 0.2 users.
    let moved = component(
        &[HTTP_030],
        "package acme:app@1.2.0; world app { export wasi:http/incoming-handler@0.3.0; }",
        &Meta::default(),
    );
    let moved = found(&base, &moved);
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert!(
        moved[0].contains("export wasi:http/incoming-handler@0.2.0")
            && moved[0].contains("not semver-compatible"),
        "{moved:?}"
    );
    // A new import is a break: hosts of 1.0 need not provide it.
    let needy = component(
        &[HTTP_020, FS],
        "package acme:app@1.3.0; world app {
            import wasi:http/outgoing-handler@0.2.0;
            import wasi:filesystem/types@0.2.0;
            export wasi:http/incoming-handler@0.2.0; }",
        &Meta::default(),
    );
    let needy = found(&base, &needy);
    assert_eq!(needy.len(), 1, "{needy:?}");
    assert!(
        needy[0].contains("import wasi:filesystem/types@0.2.0` is new"),
        "{needy:?}"
    );
}

#[test]
fn wit_packages_may_add_but_not_remove_or_change() {
    let v1 = wit_package(
        &[],
        "package acme:api@1.0.0;
         interface store {
            record entry { key: string, value: list<u8> }
            get: func(key: string) -> option<entry>;
         }
         interface admin { wipe: func(); }
         world service { export store; }",
    );
    let grown = wit_package(
        &[],
        "package acme:api@1.1.0;
         interface store {
            record entry { key: string, value: list<u8> }
            get: func(key: string) -> option<entry>;
            put: func(e: entry);
         }
         interface admin { wipe: func(); }
         interface metrics { count: func() -> u64; }
         world service { export store; export metrics; }",
    );
    assert_eq!(found(&v1, &grown), Vec::<String>::new());
    let broken = wit_package(
        &[],
        "package acme:api@1.2.0;
         interface store {
            record entry { key: string, value: string }
            get: func(key: string) -> option<entry>;
         }
         world service { export store; }",
    );
    let broken = found(&v1, &broken);
    assert!(
        broken
            .iter()
            .any(|b| b.contains("interface admin` was removed")),
        "{broken:?}"
    );
    assert!(
        broken.iter().any(|b| b.contains("#type entry")
            && b.contains("record { key: string, value: list<u8> }")
            && b.contains("record { key: string, value: string }")),
        "{broken:?}"
    );
    // A component and a WIT package are not versions of each other.
    let app = component(
        &[],
        "package acme:app@1.0.0; world app {}",
        &Meta::default(),
    );
    assert!(breaks(&v1, &app).is_err());
    // Core modules carry no WIT: nothing to break.
    assert!(breaks(b"\0asm\x01\0\0\0", b"\0asm\x01\0\0\0")
        .expect("modules")
        .is_empty());
}
