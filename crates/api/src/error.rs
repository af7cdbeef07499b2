//! Error bodies. Where the reference client parses an error it gets the
//! reference's shape: `{status, type, id}` for a missing or conflicting
//! entity, `{status, message}` otherwise; Cairn adds a `message` a person
//! can read to the entity shape too (the reference ignores it).

use serde::{Deserialize, Serialize};

/// What kind of entity an error is about (the `type` of the body).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EntityType {
    /// A checkpoint, by log length.
    LogLength,
    /// A leaf of the registry log, by registry index.
    Leaf,
    /// A log, by log id.
    Log,
    /// A record, by record id.
    Record,
    /// A namespace, by name.
    Namespace,
    /// A namespace imported from another registry, by name.
    NamespaceImport,
    /// A package, by name.
    Name,
    /// A fetch token.
    FetchToken,
    /// Content, by digest.
    ContentDigest,
}

/// The `id` of an entity: a number (log length, registry index) or text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EntityId {
    /// A log length or registry index.
    Number(u64),
    /// An id, digest, name or token.
    Text(String),
}

impl From<u64> for EntityId {
    fn from(n: u64) -> EntityId {
        EntityId::Number(n)
    }
}

impl From<String> for EntityId {
    fn from(text: String) -> EntityId {
        EntityId::Text(text)
    }
}

impl From<&str> for EntityId {
    fn from(text: &str) -> EntityId {
        EntityId::Text(text.to_owned())
    }
}

/// An error answer's body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ErrorBody {
    /// `{"status", "type", "id", "message"}`: an entity not found, or in
    /// conflict.
    Entity {
        /// The HTTP status.
        status: u16,
        /// What kind of entity.
        #[serde(rename = "type")]
        entity: EntityType,
        /// Which one.
        id: EntityId,
        /// What went wrong, for a person.
        message: String,
    },
    /// `{"status", "message"}`: anything else.
    Message {
        /// The HTTP status.
        status: u16,
        /// What went wrong, for a person.
        message: String,
    },
}

impl ErrorBody {
    /// `{"status", "message"}`.
    pub fn message(status: u16, message: impl Into<String>) -> ErrorBody {
        ErrorBody::Message {
            status,
            message: message.into(),
        }
    }

    /// `{"status", "type", "id", "message"}`.
    pub fn entity(
        status: u16,
        entity: EntityType,
        id: impl Into<EntityId>,
        message: impl Into<String>,
    ) -> ErrorBody {
        ErrorBody::Entity {
            status,
            entity,
            id: id.into(),
            message: message.into(),
        }
    }

    /// The HTTP status in the body.
    pub fn status(&self) -> u16 {
        match self {
            ErrorBody::Entity { status, .. } | ErrorBody::Message { status, .. } => *status,
        }
    }

    /// The message for a person.
    pub fn text(&self) -> &str {
        match self {
            ErrorBody::Entity { message, .. } | ErrorBody::Message { message, .. } => message,
        }
    }
}
