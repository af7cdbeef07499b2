//! Components built for the tests (no committed binaries): a WIT world
//! implemented by wit-component's dummy module, encoded as a component,
//! with metadata sections added by wasm-metadata.

use wasm_metadata::{AddMetadata, AddMetadataField, Authors, Description, Licenses, Source};
use wit_component::{dummy_module, embed_component_metadata, ComponentEncoder, StringEncoding};
use wit_parser::{ManglingAndAbi, Resolve};

/// Metadata to write into a component.
#[derive(Clone, Debug, Default)]
pub struct Meta<'a> {
    /// The `component-name` section.
    pub name: Option<&'a str>,
    /// A `processed-by` producer: (tool, version).
    pub processed_by: Option<(&'a str, &'a str)>,
    /// `description`.
    pub description: Option<&'a str>,
    /// `licenses` (SPDX).
    pub license: Option<&'a str>,
    /// `authors`.
    pub authors: Option<&'a str>,
    /// `source` (a URL).
    pub source: Option<&'a str>,
}

/// A component of the (only) world of the WIT package `main`, the packages
/// in `deps` defined first, carrying `meta`.
pub fn component(deps: &[&str], main: &str, meta: &Meta<'_>) -> Vec<u8> {
    let mut resolve = Resolve::default();
    for (i, dep) in deps.iter().enumerate() {
        resolve
            .push_source(&format!("dep{i}.wit"), dep)
            .expect("dependency WIT");
    }
    let package = resolve.push_source("main.wit", main).expect("main WIT");
    let world = resolve.select_world(&[package], None).expect("one world");
    let mut module = dummy_module(&resolve, world, ManglingAndAbi::Standard32);
    embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8)
        .expect("embed the world");
    let bytes = ComponentEncoder::default()
        .module(&module)
        .expect("module")
        .validate(true)
        .encode()
        .expect("encode the component");
    let mut add = AddMetadata::default();
    if let Some(name) = meta.name {
        add.name = AddMetadataField::Set(name.to_owned());
    }
    if let Some((tool, version)) = meta.processed_by {
        add.processed_by = vec![(tool.to_owned(), version.to_owned())];
    }
    if let Some(d) = meta.description {
        add.description = AddMetadataField::Set(Description::new(d.to_owned()));
    }
    if let Some(l) = meta.license {
        add.licenses = AddMetadataField::Set(Licenses::new(l).expect("SPDX"));
    }
    if let Some(a) = meta.authors {
        add.authors = AddMetadataField::Set(Authors::new(a.to_owned()));
    }
    if let Some(s) = meta.source {
        add.source = AddMetadataField::Set(Source::new(s).expect("URL"));
    }
    add.to_wasm(&bytes).expect("add metadata")
}

/// A WIT package encoded as a component (what `wkg wit build` publishes).
pub fn wit_package(deps: &[&str], main: &str) -> Vec<u8> {
    let mut resolve = Resolve::default();
    for (i, dep) in deps.iter().enumerate() {
        resolve
            .push_source(&format!("dep{i}.wit"), dep)
            .expect("dependency WIT");
    }
    let package = resolve.push_source("main.wit", main).expect("main WIT");
    wit_component::encode(&resolve, package).expect("encode the package")
}
