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
        assert_eq!(pg.psql("SELECT version FROM cairn_schema"), "3");
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
        pg.psql("UPDATE cairn_schema SET version = 4");
        let Err(refused) = PgStore::connect(&pg.url, PgOptions::default()) else {
            panic!("a newer schema is refused");
        };
        assert!(refused.to_string().contains("newer"), "{refused}");
    }
}
