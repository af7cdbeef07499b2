//! The lead among processes sharing the database ([`Leadership`]): the
//! writer's session and its advisory lock, the leader's advertised URL,
//! the replicas' shared secret, and the listener that wakes
//! `wait_checkpoint`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_registry::{Leadership, StoreError};
use tokio_postgres::{AsyncMessage, Client, Statement};

use crate::{failed, index_of, pg_error, PgStore, Shared};

/// The key of the session-level advisory lock that is the lead.
const LEAD_KEY: i64 = 0x6361_6972_6e00_0001;

/// The channel a committed checkpoint is announced on (its payload: the
/// log length).
pub(crate) const CHANNEL: &str = "cairn_checkpoint";

/// How long the listener waits before connecting again after a failure.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// The session that holds the lead, with its prepared statements; or,
/// while another process leads, the session that will try again to take
/// it (kept, so that a follower trying every few hundred milliseconds does
/// not connect each time).
pub(crate) struct Writer {
    pub(crate) client: Client,
    pub(crate) statements: HashMap<&'static str, Statement>,
    /// Whether it holds the lead's lock.
    leads: bool,
    /// Cleared when the session's connection ends.
    alive: Arc<AtomicBool>,
    /// The task driving the connection: aborted (closing the session,
    /// which releases the lock) when the writer is dropped.
    connection: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn usable(&self) -> bool {
        self.alive.load(Ordering::SeqCst) && !self.client.is_closed()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::SeqCst);
        self.connection.abort();
    }
}

/// A statement prepared on the writer's session, once per session.
pub(crate) async fn prepared(
    statements: &mut HashMap<&'static str, Statement>,
    client: &Client,
    sql: &'static str,
) -> Result<Statement, StoreError> {
    if let Some(statement) = statements.get(sql) {
        return Ok(statement.clone());
    }
    let statement = client
        .prepare(sql)
        .await
        .map_err(failed("prepare a statement"))?;
    statements.insert(sql, statement.clone());
    Ok(statement)
}

/// The refusal of a write or a writer's read by a process that does not lead.
pub(crate) fn not_leading() -> StoreError {
    StoreError::Backend(
        "this process does not lead the registry (it holds no PostgreSQL session with the \
         lead: never taken, given up or lost), so it cannot write the log"
            .into(),
    )
}

/// The writer is gone: the lead with it.
fn lose(shared: &Shared, writer: &mut Option<Writer>) {
    if writer.take().is_some_and(|w| w.leads) {
        tracing::warn!("postgres: the lead is lost (the writer's session ended)");
    }
    *shared.lead.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// A future borrowing the writer.
pub(crate) type WriterFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Runs `op` on the writer's session, if this process leads. A session
/// found closed, or a request unanswered for
/// [`crate::PgOptions::writer_timeout`], gives up the lead.
pub(crate) async fn on_writer<T, F>(shared: &Shared, what: &str, op: F) -> Result<T, StoreError>
where
    F: for<'a> FnOnce(&'a mut Writer) -> WriterFuture<'a, T>,
{
    let mut guard = shared.writer.lock().await;
    let leads = guard.as_ref().is_some_and(|w| w.leads);
    let usable = leads && guard.as_ref().is_some_and(Writer::usable);
    let Some(writer) = guard.as_mut().filter(|_| usable) else {
        if leads {
            lose(shared, &mut guard);
        }
        return Err(not_leading());
    };
    let timeout = shared.options.writer_timeout;
    match tokio::time::timeout(timeout, op(writer)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => {
            if guard.as_ref().is_some_and(|w| w.client.is_closed()) {
                lose(shared, &mut guard);
            }
            Err(e)
        }
        Err(_) => {
            lose(shared, &mut guard);
            Err(StoreError::Backend(format!(
                "postgres: {what}: the writer's session did not answer in {timeout:?}; the \
                 lead is given up and the outcome is unknown"
            )))
        }
    }
}

/// Takes the lead, if no session holds it: on the session kept from the
/// last try, or a new one.
async fn take_lead(shared: &Shared, url: String) -> Result<bool, StoreError> {
    let what = "take the lead";
    let mut guard = shared.writer.lock().await;
    match guard.as_ref() {
        Some(w) if w.leads && w.usable() => return Ok(true),
        Some(w) if w.leads || !w.usable() => lose(shared, &mut guard),
        _ => {}
    }
    let mut writer = match guard.take() {
        Some(candidate) => candidate,
        None => {
            let (client, connection) = shared
                .session_config
                .connect(shared.tls.clone())
                .await
                .map_err(failed(what))?;
            let alive = Arc::new(AtomicBool::new(true));
            let flag = alive.clone();
            let connection = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!("postgres: the writer's session ended: {e}");
                }
                flag.store(false, Ordering::SeqCst);
            });
            Writer {
                client,
                statements: HashMap::new(),
                leads: false,
                alive,
                connection,
            }
        }
    };
    // On any failure from here, dropping `writer` ends the session (and
    // releases the lock if it was taken).
    let taken: bool = writer
        .client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LEAD_KEY])
        .await
        .map_err(failed(what))?
        .try_get(0)
        .map_err(failed(what))?;
    if !taken {
        *guard = Some(writer);
        return Ok(false);
    }
    writer
        .client
        .batch_execute(crate::DURABLE)
        .await
        .map_err(failed(what))?;
    writer
        .client
        .execute(
            "INSERT INTO cairn_leader (id, url, pid, since) VALUES (1, $1, pg_backend_pid(), now()) \
             ON CONFLICT (id) DO UPDATE SET url = excluded.url, pid = excluded.pid, \
             since = excluded.since",
            &[&url],
        )
        .await
        .map_err(failed(what))?;
    writer.leads = true;
    let alive = writer.alive.clone();
    *guard = Some(writer);
    *shared.lead.lock().unwrap_or_else(|e| e.into_inner()) = Some(alive);
    tracing::info!("postgres: this process leads the registry");
    Ok(true)
}

/// The latest checkpoint's log length (0 when there is none).
async fn latest_checkpoint(client: &Client) -> Result<u64, StoreError> {
    let what = "read the latest checkpoint";
    let latest: i64 = client
        .query_one(
            "SELECT coalesce(max(log_length), 0)::int8 FROM checkpoints",
            &[],
        )
        .await
        .map_err(failed(what))?
        .try_get(0)
        .map_err(failed(what))?;
    index_of(latest)
}

/// Listens for checkpoints for as long as the store lives, connecting
/// again after each failure.
async fn listen(shared: Arc<Shared>) {
    loop {
        if let Err(e) = listen_once(&shared).await {
            tracing::warn!("postgres: the checkpoint listener stopped, connecting again: {e}");
        }
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

/// One listening session, until it fails.
async fn listen_once(shared: &Arc<Shared>) -> Result<(), StoreError> {
    let what = "listen for checkpoints";
    let (client, mut connection) = shared
        .session_config
        .connect(shared.tls.clone())
        .await
        .map_err(failed(what))?;
    let notified = shared.clone();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) if n.channel() == CHANNEL => {
                    match n.payload().parse::<u64>() {
                        Ok(length) => notified.saw_checkpoint(length),
                        Err(_) => tracing::warn!(
                            "postgres: a checkpoint notification names no length: {:?}",
                            n.payload()
                        ),
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(failed(what))?;
    // Whatever was committed while no one listened.
    shared.saw_checkpoint(latest_checkpoint(&client).await?);
    let ended = driver.await;
    drop(client);
    match ended {
        Ok(Ok(())) => Err(StoreError::Backend(format!(
            "postgres: {what}: the session closed"
        ))),
        Ok(Err(e)) => Err(pg_error(what, &e)),
        Err(e) => Err(StoreError::Backend(format!("postgres: {what}: {e}"))),
    }
}

impl PgStore {
    fn start_listener(&self) {
        let Some(runtime) = &self.runtime else {
            return;
        };
        self.shared.listening.get_or_init(|| {
            runtime.spawn(listen(self.shared.clone()));
        });
    }
}

impl Leadership for PgStore {
    fn try_lead(&self, url: &str) -> Result<bool, StoreError> {
        if self.shared.leading() {
            return Ok(true);
        }
        let url = url.to_owned();
        self.run("take the lead", |shared| async move {
            take_lead(&shared, url).await
        })
    }

    fn leading(&self) -> bool {
        self.shared.leading()
    }

    fn resign(&self) {
        let resigned = self.run("give up the lead", |shared| async move {
            let mut guard = shared.writer.lock().await;
            if let Some(writer) = guard.as_ref().filter(|w| w.leads) {
                // Ending the session would release the lock too; this is
                // at once, even if the session's end is slow to be seen.
                let unlock = writer
                    .client
                    .execute("SELECT pg_advisory_unlock($1)", &[&LEAD_KEY]);
                let _ = tokio::time::timeout(Duration::from_secs(5), unlock).await;
            }
            *shared.lead.lock().unwrap_or_else(|e| e.into_inner()) = None;
            *guard = None;
            Ok(())
        });
        if let Err(e) = resigned {
            tracing::warn!("postgres: giving up the lead: {e}");
        }
    }

    fn leader_url(&self) -> Result<Option<String>, StoreError> {
        self.run("read the leader", |shared| async move {
            let what = "read the leader";
            let conn = shared.conn(what).await?;
            // The URL counts only while the session that wrote it holds
            // the lock (a bigint advisory key is split in two oids).
            let sql = format!(
                "SELECT l.url FROM cairn_leader l WHERE l.id = 1 AND EXISTS (
                    SELECT 1 FROM pg_locks k
                    WHERE k.locktype = 'advisory' AND k.granted AND k.pid = l.pid
                      AND k.database = (SELECT oid FROM pg_database
                                        WHERE datname = current_database())
                      AND k.classid::int8 = {} AND k.objid::int8 = {} AND k.objsubid = 1)",
                LEAD_KEY >> 32,
                LEAD_KEY & 0xffff_ffff
            );
            conn.query_opt(&sql, &[])
                .await
                .map_err(failed(what))?
                .map(|row| row.try_get(0).map_err(failed(what)))
                .transpose()
        })
    }

    fn wait_checkpoint(&self, known: u64, timeout: Duration) -> Result<u64, StoreError> {
        self.start_listener();
        let mut seen = self.shared.checkpoints.subscribe();
        let latest = *seen.borrow_and_update();
        if latest > known {
            return Ok(latest);
        }
        self.run("wait for a checkpoint", |shared| async move {
            let woken = tokio::time::timeout(timeout, seen.wait_for(|l| *l > known))
                .await
                .map(|found| found.map(|l| *l));
            match woken {
                Ok(Ok(latest)) => Ok(latest),
                // A notification may have been missed: read the store once.
                _ => {
                    let what = "wait for a checkpoint";
                    let conn = shared.conn(what).await?;
                    let latest = latest_checkpoint(&conn).await?;
                    shared.saw_checkpoint(latest);
                    Ok(latest)
                }
            }
        })
    }

    fn replica_secret(&self) -> Result<[u8; 32], StoreError> {
        use rand_core::RngCore;
        let mut fresh = [0u8; 32];
        rand_core::OsRng.try_fill_bytes(&mut fresh).map_err(|e| {
            StoreError::Backend(format!("no randomness for the replica secret: {e}"))
        })?;
        let fresh = fresh.to_vec();
        self.run("read the replica secret", |shared| async move {
            let what = "read the replica secret";
            let conn = shared.conn(what).await?;
            conn.execute(
                "INSERT INTO cairn_secret (id, secret) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
                &[&fresh],
            )
            .await
            .map_err(failed(what))?;
            let secret: Vec<u8> = conn
                .query_one("SELECT secret FROM cairn_secret WHERE id = 1", &[])
                .await
                .map_err(failed(what))?
                .try_get(0)
                .map_err(failed(what))?;
            secret
                .try_into()
                .map_err(|_| StoreError::Corrupt("the replica secret is not 32 bytes".into()))
        })
    }
}
