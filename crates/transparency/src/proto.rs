//! The `warg.transparency` protobuf messages (`proofs.proto`), written out
//! as `prost` derives.
#![allow(missing_docs)]

#[derive(Clone, PartialEq, prost::Message)]
pub struct MapProofBundle {
    #[prost(message, repeated, tag = "1")]
    pub proofs: Vec<MapInclusionProof>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MapInclusionProof {
    #[prost(message, repeated, tag = "1")]
    pub hashes: Vec<OptionalHash>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct OptionalHash {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub hash: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LogProofBundle {
    #[prost(uint32, tag = "1")]
    pub log_length: u32,
    #[prost(uint32, repeated, tag = "2")]
    pub consistent_lengths: Vec<u32>,
    #[prost(uint32, repeated, tag = "3")]
    pub included_indices: Vec<u32>,
    #[prost(message, repeated, tag = "4")]
    pub hashes: Vec<HashEntry>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HashEntry {
    #[prost(uint32, tag = "1")]
    pub index: u32,
    #[prost(bytes = "vec", tag = "2")]
    pub hash: Vec<u8>,
}
