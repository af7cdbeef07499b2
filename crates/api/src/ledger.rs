//! `GET /v1/ledger`: where the registry log's leaves can be read, in pages
//! of packed leaves (`GET /v1/ledger/records/{start}`: per leaf, 32 bytes
//! of log id then 32 bytes of record id).

use serde::{Deserialize, Serialize};

use crate::paths;

/// The content type of a page of packed leaves.
pub const PACKED: &str = "application/vnd.warg.ledger.packed";

/// One page of the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerSource {
    /// Registry index of its first leaf.
    pub first_registry_index: u64,
    /// Registry index of its last leaf (inclusive).
    pub last_registry_index: u64,
    /// Where to GET it, relative to the registry's URL.
    pub url: String,
    /// Its content type ([`PACKED`]).
    pub content_type: String,
    /// Whether `Range` is honoured (left out when false).
    #[serde(default, skip_serializing_if = "is_false")]
    pub accept_ranges: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

impl LedgerSource {
    /// The page of packed leaves `first..=last`, at
    /// [`paths::ledger_records`]`(first)` relative to the registry's URL.
    pub fn packed(first: u64, last: u64) -> LedgerSource {
        let url = paths::ledger_records(first);
        LedgerSource {
            first_registry_index: first,
            last_registry_index: last,
            url: url.trim_start_matches('/').to_owned(),
            content_type: PACKED.to_owned(),
            accept_ranges: false,
        }
    }
}

/// The answer of `GET /v1/ledger`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerSourcesResponse {
    /// The hash algorithm of the ids (`sha256`).
    pub hash_algorithm: String,
    /// The pages, in order.
    pub sources: Vec<LedgerSource>,
}
