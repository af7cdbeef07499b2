//! Take-downs: the operator stops the registry serving a release's content,
//! or a whole package's, for a stated reason, by a signed record in the
//! registry's notice log ([`cairn_protocol::notice`]). Records and proofs
//! stay as they were; every face refuses the content with the reason
//! ([`QueryError::TakenDown`]), and a package taken down whole takes no new
//! records. Readers (on every replica) see the notice log as of the latest
//! checkpoint: it is read again from the store, from its last record on,
//! only when the view noted a notice leaf not read yet.

use std::collections::HashMap;

use cairn_protocol::notice::{Notice, NoticeLog, NoticeRecord, Scope};
use cairn_protocol::{Hash, LogId, PackageName, Version};

use crate::answer::Answer;
use crate::codec;
use crate::error::QueryError;
use crate::registry::{Attested, Registry};
use crate::sequencer::Input;
use crate::storage::{MetaStore, StoreError};
use crate::thread::{Command, Reply};

/// The notice log as readers see it.
#[derive(Default)]
pub(crate) struct Notices {
    /// The registry log length it was read up to.
    upto: u64,
    /// The registry index of its last record.
    last: Option<u64>,
    /// Its state.
    log: NoticeLog,
    /// The content the take-downs in force name: what was taken down, and
    /// why.
    by_digest: HashMap<Hash, (String, String)>,
}

/// `log` with the notice records after registry index `after` up to
/// `upto`; with the index of the last one applied.
pub(crate) fn load_notices(
    meta: &dyn MetaStore,
    mut log: NoticeLog,
    after: Option<u64>,
    upto: u64,
) -> Result<(NoticeLog, Option<u64>), StoreError> {
    let mut last = after;
    for (index, rec) in meta.log_records(&LogId::notices(), after, upto, usize::MAX)? {
        let envelope = codec::decode::<NoticeRecord>(&rec)?;
        log = log
            .apply(&envelope)
            .map_err(|e| StoreError::Corrupt(format!("stored notice record: {e}")))?;
        last = Some(index);
    }
    Ok((log, last))
}

impl Registry {
    /// The notice log as of the latest checkpoint.
    pub fn notices(&self) -> Result<NoticeLog, QueryError> {
        self.with_notices(|notices| notices.log.clone())
    }

    /// Runs `f` on the notice log as of the latest checkpoint, read again
    /// (from its last record on) if the log grew since it was last read.
    fn with_notices<T>(&self, f: impl FnOnce(&Notices) -> T) -> Result<T, QueryError> {
        let length = self.log_length();
        let mut cached = self
            .shared
            .notices
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // The store is read only when a notice record may have come since
        // (the view notes every notice leaf committed or caught up with).
        if cached.upto < length && self.shared.view.last_notice() <= cached.upto {
            cached.upto = length;
        }
        if cached.upto < length {
            let (log, last) = load_notices(
                self.shared.meta.as_ref(),
                cached.log.clone(),
                cached.last,
                length,
            )?;
            if last != cached.last {
                cached.by_digest = log
                    .taken_down()
                    .flat_map(|(scope, down)| {
                        down.content
                            .iter()
                            .map(move |d| (*d, (scope.to_string(), down.reason.clone())))
                    })
                    .collect();
                cached.log = log;
                cached.last = last;
            }
            cached.upto = length;
        }
        Ok(f(&cached))
    }

    /// Refuses content `digest` if a take-down in force names it.
    pub fn check_not_taken_down(&self, digest: &Hash) -> Result<(), QueryError> {
        let found = self.with_notices(|notices| notices.by_digest.get(digest).cloned())?;
        match found {
            Some((scope, reason)) => Err(QueryError::TakenDown {
                digest: *digest,
                scope,
                reason,
            }),
            None => Ok(()),
        }
    }

    /// Removes the bytes of content `digest` from the content store, if a
    /// take-down in force names it (else it is refused: only content
    /// already refused to everyone may go). The records and their proofs
    /// stay; a restore afterwards serves nothing until the bytes come
    /// back. Blocking.
    pub fn purge_content(&self, digest: &Hash) -> Result<(), QueryError> {
        if self.check_not_taken_down(digest).is_ok() {
            return Err(QueryError::Invalid(format!(
                "content {digest} is not taken down: take it down before purging it"
            )));
        }
        Ok(self.shared.content.remove(digest)?)
    }

    /// Takes down `version` of `name` (or, with none, the whole package:
    /// every release and any new record) for `reason`: a notice record
    /// signed by the operator names the content digests no longer served.
    /// The answer comes once the record is durably sequenced.
    pub fn take_down(
        &self,
        name: &PackageName,
        version: Option<&Version>,
        reason: &str,
    ) -> Result<Answer<Attested>, QueryError> {
        let state = self
            .published_package(&LogId::package(name))?
            .ok_or_else(|| QueryError::LogNotFound(LogId::package(name)))?;
        let content: Vec<Hash> = match version {
            Some(version) => {
                let release = state
                    .releases()
                    .find(|r| r.version == *version)
                    .ok_or_else(|| {
                        QueryError::Invalid(format!("package `{name}` has no release {version}"))
                    })?;
                vec![release.content]
            }
            None => {
                let mut all: Vec<Hash> = state.releases().map(|r| r.content).collect();
                all.sort();
                all.dedup();
                all
            }
        };
        let notice = Notice::TakeDown {
            scope: Scope {
                package: name.clone(),
                version: version.cloned(),
            },
            content,
            reason: reason.to_owned(),
        };
        Ok(self.send_notice(notice))
    }

    /// Lifts the take-down of `version` of `name` (or of the whole package).
    pub fn restore(
        &self,
        name: &PackageName,
        version: Option<&Version>,
        reason: &str,
    ) -> Answer<Attested> {
        self.send_notice(Notice::Restore {
            scope: Scope {
                package: name.clone(),
                version: version.cloned(),
            },
            reason: reason.to_owned(),
        })
    }

    /// Takes over `namespace` (or only `package` of it), imported from
    /// `origin`, with the origin's history as of its checkpoint of
    /// `log_length` records and root `log_root` (a fork notice signed by
    /// the operator). From then on the namespace (or package) takes records
    /// here; the origin's records are replayed into this log by the caller.
    pub fn fork(
        &self,
        namespace: &str,
        package: Option<&PackageName>,
        origin: &str,
        log_length: u64,
        log_root: Hash,
    ) -> Result<Answer<Attested>, QueryError> {
        match self.imported_from(namespace) {
            Some(from) if from == origin => {}
            Some(from) => {
                return Err(QueryError::Invalid(format!(
                    "namespace `{namespace}` is imported from {from}, not {origin}"
                )))
            }
            None => {
                return Err(QueryError::Invalid(format!(
                    "namespace `{namespace}` is not imported from another registry (or is forked \
                     already): there is nothing to fork"
                )))
            }
        }
        Ok(self.send_notice(Notice::Fork {
            namespace: namespace.to_owned(),
            package: package.cloned(),
            origin: origin.to_owned(),
            log_length,
            log_root,
        }))
    }

    fn send_notice(&self, notice: Notice) -> Answer<Attested> {
        let input = Input::Notice(Box::new(notice));
        self.send(|reply| Command::Input(input, Reply::Attested(reply)))
    }
}
