//! The throwaway PostgreSQL server the storage tests of the PostgreSQL
//! backend run on (issue 16): it starts on 127.0.0.1 only, answers, and
//! is gone after.

use cairn_interop::postgres::Postgres;

#[test]
fn a_throwaway_postgres_starts_on_loopback_and_goes_away() {
    let Some(pg) = Postgres::start("a_throwaway_postgres_starts_on_loopback_and_goes_away") else {
        return;
    };
    assert_eq!(pg.psql("SELECT 1 + 1"), "2");
    assert_eq!(pg.psql("SHOW listen_addresses"), "127.0.0.1");
    assert!(
        pg.psql("SHOW server_version").starts_with("15")
            || !pg.psql("SHOW server_version").is_empty()
    );
    let port = pg.port;
    drop(pg);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server is stopped on drop"
    );
}

// The PostgreSQL store's lead (`cairn_registry::Leadership`): two stores on
// one database, as two registry processes would be.

mod lead {
    use std::time::{Duration, Instant};

    use cairn_interop::postgres::Postgres;
    use cairn_postgres::{PgOptions, PgStore};
    use cairn_protocol::{
        Checkpoint, Hash, LogId, PackageName, PrivateKey, RecordId, SignedCheckpoint,
        TimestampedCheckpoint,
    };
    use cairn_registry::{Batch, Leadership, MetaStore, RecordState, StoredRecord};

    fn store(pg: &Postgres) -> PgStore {
        PgStore::connect(&pg.url, PgOptions::default()).expect("connect")
    }

    fn checkpoint(length: u64, salt: &str) -> SignedCheckpoint {
        TimestampedCheckpoint {
            checkpoint: Checkpoint {
                log_root: Hash::of(format!("log {length} {salt}").as_bytes()),
                log_length: length,
                map_root: Hash::of(format!("map {length} {salt}").as_bytes()),
            },
            timestamp: 1_800_000_000 + length,
        }
        .sign(&PrivateKey::generate())
    }

    /// A batch of `count` sequenced records from index `start`, with the
    /// checkpoint that covers them.
    fn batch(start: u64, count: u64, salt: &str) -> Batch {
        let name = PackageName::new("acme:lead").expect("name");
        let log_id = LogId::package(&name);
        let records = (start..start + count)
            .map(|index| {
                let content_bytes = format!("record {index} {salt}").into_bytes();
                StoredRecord {
                    record_id: RecordId::package_record(&content_bytes),
                    log_id,
                    content_bytes,
                    key_id: format!("sha256:{}", "0".repeat(64)),
                    signature: "ecdsa-p256:AAAA".into(),
                    state: RecordState::Sequenced { index },
                }
            })
            .collect();
        Batch {
            records,
            names: if start == 0 {
                vec![(log_id, name)]
            } else {
                Vec::new()
            },
            checkpoint: Some(checkpoint(start + count, salt)),
            ..Batch::default()
        }
    }

    /// Waits up to `limit` for `done`.
    fn within(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if done() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn one_store_leads_and_the_other_cannot_commit() {
        let Some(pg) = Postgres::start("one_store_leads_and_the_other_cannot_commit") else {
            return;
        };
        let (a, b) = (store(&pg), store(&pg));
        assert!(
            !a.leading() && !b.leading(),
            "no store leads before try_lead"
        );
        let refused = a.commit(&batch(0, 1, "a")).expect_err("no lead, no commit");
        assert!(refused.to_string().contains("does not lead"), "{refused}");
        assert_eq!(a.leader_url().expect("leader"), None, "no one leads yet");

        assert!(a.try_lead("http://a.example:1").expect("lead"));
        assert!(a.try_lead("http://a.example:1").expect("lead"), "held");
        assert!(!b.try_lead("http://b.example:1").expect("lead"));
        assert!(
            !b.try_lead("http://b.example:1").expect("lead"),
            "still held"
        );
        assert!(a.leading() && !b.leading());
        for s in [&a, &b] {
            assert_eq!(
                s.leader_url().expect("leader").as_deref(),
                Some("http://a.example:1")
            );
        }

        let sessions =
            || pg.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cairn'");
        let before = sessions();
        let refused = b.commit(&batch(0, 1, "b")).expect_err("b does not lead");
        assert!(refused.to_string().contains("does not lead"), "{refused}");
        assert!(b
            .writer_log(&LogId::package(
                &PackageName::new("acme:lead").expect("name")
            ))
            .is_err());
        assert_eq!(sessions(), before, "a refused commit opens no session");

        a.commit(&batch(0, 3, "a")).expect("the leader commits");
        assert_eq!(
            b.load(0).expect("load").leaves.len(),
            3,
            "b reads what a wrote"
        );
        assert_eq!(
            a.replica_secret().expect("secret"),
            b.replica_secret().expect("secret"),
            "one secret for every process sharing the store"
        );

        // Resigning frees the lead at once.
        a.resign();
        assert!(!a.leading());
        assert!(a.commit(&batch(3, 1, "a")).is_err());
        assert!(b.try_lead("http://b.example:1").expect("lead"));
        assert_eq!(
            a.leader_url().expect("leader").as_deref(),
            Some("http://b.example:1")
        );
        b.commit(&batch(3, 1, "b")).expect("the new leader commits");
    }

    #[test]
    fn a_lost_session_passes_the_lead_and_fences_the_old_leader() {
        let Some(pg) = Postgres::start("a_lost_session_passes_the_lead_and_fences_the_old_leader")
        else {
            return;
        };
        let (a, b) = (store(&pg), store(&pg));
        assert!(a.try_lead("http://a.example:1").expect("lead"));
        a.commit(&batch(0, 2, "a")).expect("commit");
        assert!(!b.try_lead("http://b.example:1").expect("lead"));

        // The server ends the leader's session (as on a network partition
        // the leader's side cannot see).
        assert_eq!(
            pg.psql("SELECT pg_terminate_backend(pid) FROM cairn_leader"),
            "t"
        );
        let started = Instant::now();
        assert!(
            within(Duration::from_secs(1), || b
                .try_lead("http://b.example:1")
                .expect("lead")),
            "the other store takes the lead within a second"
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(
            within(Duration::from_secs(1), || !a.leading()),
            "the old leader knows it lost the lead"
        );
        let refused = a.commit(&batch(2, 1, "a")).expect_err("fenced");
        assert!(refused.to_string().contains("does not lead"), "{refused}");
        assert!(!a.leading(), "lost until taken again");
        assert_eq!(
            a.leader_url().expect("leader").as_deref(),
            Some("http://b.example:1")
        );
        b.commit(&batch(2, 1, "b")).expect("the new leader commits");

        // A checkpoint of a length already committed never commits twice,
        // whoever leads.
        let again = b.commit(&batch(0, 2, "again")).expect_err("taken lengths");
        assert!(again.to_string().contains("duplicate key"), "{again}");
        let same_length = Batch {
            checkpoint: Some(checkpoint(3, "another")),
            ..Batch::default()
        };
        let again = b.commit(&same_length).expect_err("a taken length");
        assert!(again.to_string().contains("checkpoints_pkey"), "{again}");
        assert!(b.leading(), "a refused commit keeps the lead");

        // Dropping the leader (its process exits) frees the lead too.
        assert!(!a.try_lead("http://a.example:1").expect("lead"));
        drop(b);
        assert!(
            within(Duration::from_secs(1), || a
                .try_lead("http://a.example:1")
                .expect("lead")),
            "the lead passes within a second of the leader's exit"
        );
        a.commit(&batch(3, 1, "a"))
            .expect("the leader again commits");
        assert_eq!(a.load(0).expect("load").leaves.len(), 4);
    }

    #[test]
    fn a_committed_checkpoint_wakes_the_other_store() {
        let Some(pg) = Postgres::start("a_committed_checkpoint_wakes_the_other_store") else {
            return;
        };
        let (a, b) = (store(&pg), store(&pg));
        assert!(a.try_lead("http://a.example:1").expect("lead"));
        // No checkpoint yet: a wait times out with 0.
        let started = Instant::now();
        assert_eq!(
            b.wait_checkpoint(0, Duration::from_millis(300))
                .expect("wait"),
            0
        );
        assert!(started.elapsed() >= Duration::from_millis(300));

        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| {
                let started = Instant::now();
                let latest = b.wait_checkpoint(0, Duration::from_secs(30)).expect("wait");
                (latest, started.elapsed())
            });
            std::thread::sleep(Duration::from_millis(300));
            a.commit(&batch(0, 5, "a")).expect("commit");
            let (latest, waited) = waiter.join().expect("waiter");
            assert_eq!(latest, 5);
            assert!(
                waited < Duration::from_secs(5),
                "woken by the notification, not the timeout: {waited:?}"
            );
        });
        // Known lengths return at once; a later one waits.
        let started = Instant::now();
        assert_eq!(
            b.wait_checkpoint(3, Duration::from_secs(30)).expect("wait"),
            5
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(
            b.wait_checkpoint(5, Duration::from_millis(100))
                .expect("wait"),
            5
        );

        // A store that starts after the checkpoint finds it at once.
        let c = store(&pg);
        let started = Instant::now();
        assert_eq!(
            c.wait_checkpoint(0, Duration::from_secs(30)).expect("wait"),
            5
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn the_store_works_inside_another_runtime_and_replicas_start_together() {
        let Some(pg) =
            Postgres::start("the_store_works_inside_another_runtime_and_replicas_start_together")
        else {
            return;
        };
        // A server whose default makes commits not durable: each session
        // of the store raises it again.
        pg.psql("ALTER DATABASE cairn SET synchronous_commit = off");
        // Several processes creating the schema at once: one creates it,
        // the others find it made.
        let stores: Vec<PgStore> = std::thread::scope(|scope| {
            let starting: Vec<_> = (0..4).map(|_| scope.spawn(|| store(&pg))).collect();
            starting
                .into_iter()
                .map(|s| s.join().expect("start"))
                .collect()
        });
        assert_eq!(pg.psql("SELECT version FROM cairn_schema"), "5");
        // Called (and dropped) on a worker thread of another runtime.
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async move {
            for s in &stores {
                assert!(s.load(0).expect("load").leaves.is_empty());
            }
            assert!(stores[0].try_lead("http://a.example:1").expect("lead"));
            stores[0].commit(&batch(0, 1_000, "many")).expect("commit");
            assert_eq!(stores[1].leaves(0, 2_000).expect("leaves").len(), 1_000);
            drop(stores);
        });
    }

    #[test]
    fn a_database_of_a_newer_schema_is_refused() {
        let Some(pg) = Postgres::start("a_database_of_a_newer_schema_is_refused") else {
            return;
        };
        drop(store(&pg));
        pg.psql("UPDATE cairn_schema SET version = 6");
        let Err(refused) = PgStore::connect(&pg.url, PgOptions::default()) else {
            panic!("a newer schema is refused");
        };
        assert!(refused.to_string().contains("newer"), "{refused}");
    }

    /// `bytes` as a PostgreSQL `bytea` literal.
    fn bytea(bytes: &[u8]) -> String {
        format!("'\\x{}'::bytea", hex::encode(bytes))
    }

    fn text(value: &str) -> String {
        format!("'{}'", value.replace('\'', "''"))
    }

    #[test]
    fn a_database_of_schema_3_is_migrated() {
        let Some(pg) = Postgres::start("a_database_of_schema_3_is_migrated") else {
            return;
        };
        drop(store(&pg));
        // Version 3's records: one table with every record's state and
        // signed parts as text, the name on the first row of each log,
        // and the leaves apart.
        pg.psql(
            "DROP TABLE records, pending, logs, map_snapshot, map_snapshot_chunks;
             DROP SEQUENCE map_snapshot_generation;
             CREATE TABLE map_snapshot (id INTEGER PRIMARY KEY CHECK (id = 1),
                                        log_length BIGINT NOT NULL, bytes BYTEA NOT NULL);
             INSERT INTO map_snapshot VALUES (1, 4, '\\x00'::bytea);
             CREATE TABLE records (
                 log_id BYTEA NOT NULL, record_id BYTEA NOT NULL,
                 seq BIGINT GENERATED ALWAYS AS IDENTITY, content_bytes BYTEA NOT NULL,
                 key_id TEXT NOT NULL, signature TEXT NOT NULL, state INTEGER NOT NULL,
                 registry_index BIGINT UNIQUE, missing TEXT, since BIGINT, reason TEXT,
                 name TEXT COLLATE \"C\", PRIMARY KEY (log_id, record_id));
             CREATE INDEX records_by_log ON records (log_id, registry_index);
             CREATE INDEX records_sourcing ON records (state) WHERE state = 0;
             CREATE INDEX records_named ON records (name) WHERE name IS NOT NULL;
             CREATE TABLE leaves (idx BIGINT PRIMARY KEY, log_id BYTEA NOT NULL,
                                  record_id BYTEA NOT NULL);
             UPDATE cairn_schema SET version = 3;",
        );
        let key = PrivateKey::generate();
        let signed = |text: &str| {
            let content_bytes = format!("prev sha256:{} {text}", "ab".repeat(32)).into_bytes();
            let signature = key.sign(&content_bytes).to_string();
            (content_bytes, signature)
        };
        let names = ["acme:one", "acme:two"].map(|n| PackageName::new(n).expect("name"));
        let mut records = Vec::new();
        for (i, name) in names.iter().enumerate() {
            for r in 0..3u64 {
                let (content_bytes, signature) = signed(&format!("{name} {r}"));
                records.push(StoredRecord {
                    record_id: RecordId::package_record(&content_bytes),
                    log_id: LogId::package(name),
                    content_bytes,
                    key_id: key.public_key().id().to_string(),
                    signature,
                    state: match (i, r) {
                        (1, 2) => RecordState::Sourcing {
                            missing: vec![Hash::of(b"later")],
                            since: 1_800_000_000,
                        },
                        (0, 2) => RecordState::Rejected {
                            reason: "no content".into(),
                        },
                        _ => RecordState::Sequenced {
                            index: i as u64 * 2 + r,
                        },
                    },
                });
            }
        }
        // A key id and signature not in their usual forms stay as they are.
        records[1].key_id = "sha256:NOT-HEX".into();
        records[1].signature = "ecdsa-p256:AAAA".into();
        let mut sql = String::new();
        for (n, r) in records.iter().enumerate() {
            let (state, index, missing, since, reason) = match &r.state {
                RecordState::Sequenced { index } => (
                    1,
                    index.to_string(),
                    "NULL".into(),
                    "NULL".into(),
                    "NULL".into(),
                ),
                RecordState::Sourcing { missing, since } => (
                    0,
                    "NULL".into(),
                    text(
                        &missing
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(" "),
                    ),
                    since.to_string(),
                    "NULL".into(),
                ),
                RecordState::Rejected { reason } => {
                    (2, "NULL".into(), "NULL".into(), "NULL".into(), text(reason))
                }
            };
            let name = if n % 3 == 0 {
                text(names[n / 3].as_str())
            } else {
                "NULL".into()
            };
            sql.push_str(&format!(
                "INSERT INTO records (log_id, record_id, content_bytes, key_id, signature, state, \
                 registry_index, missing, since, reason, name) VALUES ({}, {}, {}, {}, {}, {state}, \
                 {index}, {missing}, {since}, {reason}, {name});\n",
                bytea(r.log_id.digest().as_bytes()),
                bytea(r.record_id.digest().as_bytes()),
                bytea(&r.content_bytes),
                text(&r.key_id),
                text(&r.signature),
            ));
            if let RecordState::Sequenced { index } = r.state {
                sql.push_str(&format!(
                    "INSERT INTO leaves VALUES ({index}, {}, {});\n",
                    bytea(r.log_id.digest().as_bytes()),
                    bytea(r.record_id.digest().as_bytes())
                ));
            }
        }
        pg.psql(&sql);

        let migrated = store(&pg);
        assert_eq!(pg.psql("SELECT version FROM cairn_schema"), "5");
        assert_eq!(
            pg.psql("SELECT count(*) FROM pg_tables WHERE tablename IN ('leaves', 'records_v3')"),
            "0"
        );
        for r in &records {
            assert_eq!(
                migrated
                    .record(&r.log_id, &r.record_id)
                    .expect("read")
                    .as_ref(),
                Some(r)
            );
        }
        let loaded = migrated.load(0).expect("load");
        assert_eq!(loaded.log_length, 4);
        let leaves: Vec<LogId> = loaded.leaves.iter().map(|l| l.log_id).collect();
        let (one, two) = (LogId::package(&names[0]), LogId::package(&names[1]));
        assert_eq!(leaves, vec![one, one, two, two]);
        assert_eq!(loaded.sourcing, vec![records[5].clone()]);
        assert_eq!(
            migrated.package_names(&[one, two]).expect("names"),
            names.iter().cloned().map(Some).collect::<Vec<_>>()
        );
        assert_eq!(
            migrated
                .log_records(&two, None, u64::MAX, 10)
                .expect("log")
                .len(),
            2
        );
    }
}

/// A database made at schema version 4 (before the publish policies and
/// the trusted keys' table) gains them when a newer Cairn connects, and
/// is at version 5 then.
#[test]
fn a_version_4_database_gains_the_tables_added_since() {
    use cairn_postgres::{PgOptions, PgStore};
    use cairn_registry::oci::{OciStore, TrustedKey};

    let Some(pg) = Postgres::start("a_version_4_database_gains_the_tables_added_since") else {
        return;
    };
    let store = PgStore::connect(&pg.url, PgOptions::default()).expect("connect");
    drop(store);
    pg.psql("DROP TABLE trusted_keys");
    pg.psql("DROP TABLE publish_policy");
    pg.psql("UPDATE cairn_schema SET version = 4");
    let store = PgStore::connect(&pg.url, PgOptions::default()).expect("reconnect");
    assert_eq!(pg.psql("SELECT version FROM cairn_schema"), "5");
    let strict = cairn_registry::policy::PublishPolicy {
        require_license: true,
        ..Default::default()
    };
    cairn_registry::MetaStore::set_publish_policy(&store, "acme", &strict, None).expect("policies");
    let key = TrustedKey {
        namespace: "acme".into(),
        package: None,
        key_id: "sha256:aa".into(),
        label: "ci".into(),
        pem: "pem".into(),
    };
    store.trust_key(&key).expect("the table is back");
    assert_eq!(store.trusted_keys("acme").expect("keys"), vec![key]);
}
