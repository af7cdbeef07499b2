//! The registry log in the C2SP formats (issue 17): `/tlog/checkpoint` is a
//! signed note over the same size and root as the Warg checkpoint, and the
//! tiles under `/tlog/tile/` give that root. Checked with independent
//! implementations: `signed_note` and `tlog_tiles` (Cloudflare's ports of
//! Go's `golang.org/x/mod/sumdb/{note,tlog}`), which read the note and
//! authenticate every tile they fetch against the checkpoint.

use std::cell::RefCell;
use std::collections::HashMap;

use cairn_interop::http::Http;
use cairn_interop::server::TestServer;
use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{Envelope, HashAlgorithm, LogId, PackageName, PrivateKey, Timestamp};
use cairn_registry::{wait_until, RecordStatus};
use reqwest::{Method, StatusCode};
use signed_note::{Note, StandardVerifier, VerifierList};
use tlog_tiles::{Tile, TileHashReader, TileReader};

/// Publishes `count` new packages (one `init` record each) through the
/// engine's door; returns the last registry index.
fn publish(server: &TestServer, count: u64) -> u64 {
    let key = PrivateKey::generate();
    let mut last = 0;
    let answers: Vec<_> = (0..count)
        .map(|i| {
            let name: PackageName = format!("acme:p{i}").parse().expect("name");
            let record = Envelope::sign(
                &key,
                PackageRecord {
                    prev: None,
                    version: 0,
                    timestamp: Timestamp::new(1_800_000_000, i as i32),
                    entries: vec![PackageEntry::Init {
                        hash_algorithm: HashAlgorithm::Sha256,
                        key: key.public_key().clone(),
                    }],
                },
            );
            server
                .registry
                .submit(name.clone(), LogId::package(&name), record)
        })
        .collect();
    for answer in answers {
        match answer.wait().expect("accepted") {
            RecordStatus::Processing { index } | RecordStatus::Published { index } => {
                last = last.max(index)
            }
            other => panic!("not sequenced: {other:?}"),
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    assert!(wait_until(server.registry.checkpointed(last), deadline).expect("checkpoint"));
    last
}

/// Reads C2SP tiles over HTTP for `tlog_tiles`, which names them as Go's
/// `tlog` does (`tile/8/<L>/<N>`): the height element goes.
struct HttpTiles<'a> {
    http: &'a Http,
    fetched: RefCell<HashMap<String, usize>>,
}

impl TileReader for HttpTiles<'_> {
    fn height(&self) -> u8 {
        8
    }

    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        tiles
            .iter()
            .map(|tile| {
                let path = tile.path().replacen("tile/8/", "tile/", 1);
                *self.fetched.borrow_mut().entry(path.clone()).or_default() += 1;
                let reply = self
                    .http
                    .send(Method::GET, &format!("/tlog/{path}"), &[], Vec::new());
                assert_eq!(reply.status, StatusCode::OK, "GET /tlog/{path}");
                assert_eq!(
                    reply.header("cache-control"),
                    "public, max-age=31536000, immutable"
                );
                Ok(reply.body)
            })
            .collect()
    }

    fn save_tiles(&self, _tiles: &[Tile], _data: &[Vec<u8>]) {}
}

#[test]
fn the_c2sp_checkpoint_and_tiles_give_the_warg_checkpoints_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path(), &["acme"]);
    let http = Http::new(&server.url);
    // Two full level-0 tiles and a partial one, a partial level-1 tile.
    let last = publish(&server, 700);

    let warg = http
        .send(Method::GET, "/v1/fetch/checkpoint", &[], Vec::new())
        .json();
    let length = warg["contents"]["logLength"].as_u64().expect("log length");
    assert!(length > last);
    let warg_root: cairn_protocol::Hash = warg["contents"]["logRoot"]
        .as_str()
        .expect("log root")
        .parse()
        .expect("a digest");

    // The note verifies with the log's verifier key, as Go's note package
    // reads it, and names the same size and root.
    let vkey = http.send(Method::GET, "/tlog/key", &[], Vec::new());
    let vkey = String::from_utf8(vkey.body).expect("text");
    let verifier = StandardVerifier::new(vkey.trim()).expect("a verifier key");
    let reply = http.send(Method::GET, "/tlog/checkpoint", &[], Vec::new());
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(reply.header("cache-control"), "public, max-age=5");
    let note = Note::from_bytes(&reply.body).expect("a signed note");
    let (verified, _) = note
        .verify(&VerifierList::new(vec![Box::new(verifier.clone())]))
        .expect("signed by the log's key");
    assert_eq!(verified.len(), 1);
    let checkpoint = tlog_tiles::Checkpoint::from_bytes(note.text()).expect("a checkpoint");
    assert_eq!(checkpoint.origin(), vkey.split('+').next().expect("name"));
    assert_eq!(checkpoint.size(), length, "the Warg checkpoint's size");
    assert_eq!(
        checkpoint.hash().0,
        *warg_root.as_bytes(),
        "the Warg checkpoint's root"
    );

    // The tiles authenticate against it: the tree hash and record proofs
    // from tiles alone.
    let tiles = HttpTiles {
        http: &http,
        fetched: RefCell::new(HashMap::new()),
    };
    let reader = TileHashReader::new(length, *checkpoint.hash(), &tiles);
    let tree = tlog_tiles::tree_hash(length, &reader).expect("tree hash from tiles");
    assert_eq!(tree.0, *warg_root.as_bytes());
    for n in [0, 1, 255, 256, 511, 512, length - 1] {
        // The entry: the Warg log leaf's bytes, from its entry bundle.
        let bundle = http.send(
            Method::GET,
            &format!("/tlog/tile/entries/{:03}{}", n / 256, {
                let width = (length - n / 256 * 256).min(256);
                if width < 256 {
                    format!(".p/{width}")
                } else {
                    String::new()
                }
            }),
            &[],
            Vec::new(),
        );
        assert_eq!(bundle.status, StatusCode::OK);
        let mut entries = Vec::new();
        let mut rest = &bundle.body[..];
        while let Some((len, tail)) = rest.split_first_chunk::<2>() {
            let len = u16::from_be_bytes(*len) as usize;
            entries.push(tail[..len].to_vec());
            rest = &tail[len..];
        }
        let entry = &entries[(n % 256) as usize];
        let proof = tlog_tiles::prove_record(length, n, &reader).expect("a record proof");
        tlog_tiles::check_record(
            &proof,
            length,
            *checkpoint.hash(),
            n,
            tlog_tiles::record_hash(entry),
        )
        .expect("the entry is in the checkpointed tree");
    }
    // Each tile was fetched once or twice at most: proofs need few.
    assert!(tiles.fetched.borrow().values().all(|n| *n <= 16));

    // Full level-0 tiles and entry bundles are kept in storage once made
    // (then served from there); partial ones, which grow, are not.
    let kept = dir.path().join("content").join("tiles").join("tile");
    for (path, url) in [
        ("0/000", "/tlog/tile/0/000"),
        ("entries/001", "/tlog/tile/entries/001"),
    ] {
        let file = kept.join(path);
        let stored = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let served = http.send(Method::GET, url, &[], Vec::new());
        assert_eq!(served.body, stored, "{url} is served as kept");
    }
    assert!(!kept.join("entries/002.p").exists());

    // `?wait=` is for the registry's own replicas; nonsense is refused.
    let waited = http.send(Method::GET, "/tlog/checkpoint?wait=5", &[], Vec::new());
    assert_eq!(waited.status, StatusCode::FORBIDDEN);
    let waited = http.send(Method::GET, "/tlog/checkpoint?wait=x", &[], Vec::new());
    assert_eq!(waited.status, StatusCode::BAD_REQUEST);
    assert!(waited.json()["message"].as_str().is_some());

    // Tiles the checkpoint does not hold, and paths that are no tile.
    for path in [
        "/tlog/tile/0/009",
        "/tlog/tile/2/000",
        "/tlog/tile/0/000.p/0",
        "/tlog/tile/0/1",
        "/tlog/tile/entries/x000/001",
    ] {
        let reply = http.send(Method::GET, path, &[], Vec::new());
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert!(reply.json()["message"].as_str().is_some(), "{path}");
    }
    server.stop();
}

#[test]
fn keys_and_signatures_read_the_same_in_both_implementations() {
    use cairn_transparency::note::{Note as OurNote, Signer as OurSigner, ED25519};
    let ours = OurSigner::from_seed("example.com/log", ED25519, [3; 32]).expect("key");
    // Our private key text is Go's (`PRIVATE+KEY+...`): theirs reads it, and
    // signs what ours verifies.
    let theirs = signed_note::StandardSigner::new(&ours.encode()).expect("their signer");
    let mut note = Note::new(b"a text\n", &[]).expect("note");
    note.add_sigs(&[&theirs]).expect("sign");
    let parsed = OurNote::parse(&note.to_bytes()).expect("ours parses theirs");
    parsed
        .verify(std::slice::from_ref(ours.verifier()))
        .expect("ours verifies theirs");
    // And the reverse: our signature, their verifier from our verifier key.
    let mut mine = OurNote::new("a text\n").expect("note");
    mine.signatures.push(ours.sign(&mine.text));
    let verifier = StandardVerifier::new(&ours.verifier().to_string()).expect("vkey");
    Note::from_bytes(mine.to_string().as_bytes())
        .expect("theirs parses ours")
        .verify(&VerifierList::new(vec![Box::new(verifier)]))
        .expect("theirs verifies ours");
}

/// Go's `tlog` reading the hashes of one of our logs: its stored hash
/// index names a subtree (level, n), which is a node of ours.
struct OurHashes<'a>(&'a cairn_transparency::log::VecLog);

impl tlog_tiles::HashReader for OurHashes<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        use cairn_transparency::log::{LogData, Node};
        indexes
            .iter()
            .map(|&index| {
                let (level, n) = tlog_tiles::split_stored_hash_index(index);
                let start = n << level;
                let node = Node(2 * start + (1u64 << level) - 1);
                self.0
                    .hash_for(node)
                    .map(|h| tlog_tiles::Hash(*h.as_bytes()))
                    .ok_or(tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }
}

#[test]
fn rfc_proofs_equal_those_of_gos_tlog() {
    use cairn_transparency::hash_leaf;
    use cairn_transparency::log::rfc9162;
    use cairn_transparency::log::VecLog;
    let mut log = VecLog::new();
    for i in 0..300u64 {
        log.push(hash_leaf(&i.to_le_bytes()));
    }
    let go = OurHashes(&log);
    let as_go = |proof: Vec<cairn_transparency::Hash>| -> Vec<tlog_tiles::Hash> {
        proof
            .iter()
            .map(|h| tlog_tiles::Hash(*h.as_bytes()))
            .collect()
    };
    for size in [1u64, 2, 3, 7, 8, 9, 100, 255, 256, 257, 300] {
        let root = tlog_tiles::tree_hash(size, &go).expect("tree hash");
        assert_eq!(root.0, *log.root_at(size).expect("root").as_bytes());
        for index in [0, size / 3, size / 2, size - 1] {
            assert_eq!(
                as_go(rfc9162::inclusion_proof(&log, index, size).expect("ours")),
                tlog_tiles::prove_record(size, index, &go).expect("theirs"),
                "inclusion of {index} in {size}"
            );
        }
        for old in [1, size / 2, size.saturating_sub(1), size] {
            if old == 0 {
                continue;
            }
            assert_eq!(
                as_go(rfc9162::consistency_proof(&log, old, size).expect("ours")),
                tlog_tiles::prove_tree(size, old, &go).expect("theirs"),
                "consistency from {old} to {size}"
            );
        }
    }
}
