//! `GET /v1/content/{digest}`: where content can be downloaded.

use std::collections::BTreeMap;

use cairn_protocol::Hash;
use serde::{Deserialize, Serialize};

/// A place content can be fetched from, tagged by `type`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ContentSource {
    /// An HTTP GET of `url`.
    #[serde(rename_all = "camelCase")]
    HttpGet {
        /// The URL of the bytes.
        url: String,
        /// Whether the server honours `Range` (left out when false).
        #[serde(default, skip_serializing_if = "is_false")]
        accept_ranges: bool,
        /// The size in bytes, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
    },
}

fn is_false(b: &bool) -> bool {
    !b
}

/// The answer of `GET /v1/content/{digest}`: sources by digest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentSourcesResponse {
    /// Sources of the digest asked for (and of any content it imports).
    pub content_sources: BTreeMap<String, Vec<ContentSource>>,
}

impl ContentSourcesResponse {
    /// One HTTP source of `digest`: `url`, with `Range` support, of `size`
    /// bytes.
    pub fn http_get(digest: &Hash, url: String, size: u64) -> ContentSourcesResponse {
        let source = ContentSource::HttpGet {
            url,
            accept_ranges: true,
            size: Some(size),
        };
        ContentSourcesResponse {
            content_sources: BTreeMap::from([(digest.to_string(), vec![source])]),
        }
    }

    /// The URL of the first HTTP GET source of `digest`.
    pub fn http_url(&self, digest: &Hash) -> Option<&str> {
        self.content_sources
            .get(&digest.to_string())?
            .first()
            .map(|source| match source {
                ContentSource::HttpGet { url, .. } => url.as_str(),
            })
    }
}
