//! Durable publish throughput of replicated `cairn serve` on PostgreSQL
//! and an S3 bucket, beside one server on the embedded default, in one run.
//!
//! Cells (each on fresh stores): `sqlite` (one server, SQLite and files),
//! `pg+s3 x1` (one server on PostgreSQL and a moto bucket) and `pg+s3 x3`
//! (three replicas on one database and bucket; the load goes to all three
//! in turn, so two thirds of it is forwarded by followers to the leader).
//! In each, `--in-flight` publishers (default 1,000) POST signed `init`
//! records of fresh packages for `--seconds` (default 20): a record counts
//! once its 202 says it is durably accepted (the server answers after the
//! commit). Reported: accepted records/s, p50/p99 of the POST, failures,
//! and the peak RSS of every server process. PostgreSQL 15 and moto are
//! started on 127.0.0.1 by the bench (`initdb`, `moto_server`).
//!
//! `cargo bench -p cairn-cli --bench replicas -- [--in-flight N] [--seconds S]`;
//! `CAIRN_BENCH_SMOKE=1` (as `.ci/run` runs it) is a few seconds at 50.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_interop::postgres::Postgres;
use cairn_interop::s3::Moto;
use cairn_protocol::{PackageName, PrivateKey};
use rayon::prelude::*;

use common::{admin_token, cairn, free_addr, wait_ready};

struct Options {
    in_flight: usize,
    seconds: u64,
}

fn options() -> Options {
    let smoke = std::env::var_os("CAIRN_BENCH_SMOKE").is_some();
    let mut options = Options {
        in_flight: if smoke { 50 } else { 1000 },
        seconds: if smoke { 3 } else { 20 },
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = || args.get(i + 1).and_then(|v| v.parse().ok());
        match args[i].as_str() {
            "--in-flight" => options.in_flight = value().expect("--in-flight N"),
            "--seconds" => options.seconds = value().expect("--seconds S") as u64,
            _ => {}
        }
        i += 1;
    }
    options
}

/// A signed `init` of a fresh package, as the POST body and its path.
struct Prepared {
    path: String,
    body: String,
}

fn prepare(first: usize, count: usize) -> Vec<Prepared> {
    let key = PrivateKey::generate();
    (first..first + count)
        .into_par_iter()
        .map(|n| {
            let name: PackageName = format!("bench:p{n}").parse().expect("name");
            let (path, body) = common::publish::init_request(&key, &name);
            Prepared { path, body }
        })
        .collect()
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn peak_rss_mib(&self) -> u64 {
        cairn_interop::report::peak_rss_mib(Some(self.child.id())) as u64
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data: &std::path::Path, extra: &[String], env: &[(String, String)]) -> Server {
    let addr = free_addr();
    let mut child = cairn()
        .args(["serve", "--namespace", "bench", "--listen"])
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(data)
        .args(["--rate-limit-ip", "0", "--rate-limit-token", "0"])
        .args(extra)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("CAIRN_LOG", "warn")
        .env_remove("CAIRN_OPERATOR_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn cairn serve");
    wait_ready(&mut child, addr);
    Server { child, addr }
}

struct Cell {
    name: String,
    accepted: usize,
    failed: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    rss_mib: Vec<u64>,
}

fn drive(servers: &[Server], bearer: &str, options: &Options, first: usize) -> Cell {
    // Enough records for the run at a generous rate, signed before the clock.
    let records = Arc::new(prepare(
        first,
        options.in_flight * 40 * options.seconds as usize,
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let urls: Vec<String> = servers
        .iter()
        .map(|s| format!("http://{}", s.addr))
        .collect();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.in_flight)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let started = Instant::now();
    let until = started + Duration::from_secs(options.seconds);
    runtime.block_on(async {
        let tasks: Vec<_> = (0..options.in_flight)
            .map(|worker| {
                let (records, next, failed, latencies, client) = (
                    records.clone(),
                    next.clone(),
                    failed.clone(),
                    latencies.clone(),
                    client.clone(),
                );
                let url = urls[worker % urls.len()].clone();
                let bearer = bearer.to_owned();
                tokio::spawn(async move {
                    while Instant::now() < until {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let Some(record) = records.get(n) else { break };
                        let sent = Instant::now();
                        let answer = client
                            .post(format!("{url}{}", record.path))
                            .header("authorization", &bearer)
                            .header("content-type", "application/json")
                            .body(record.body.clone())
                            .send()
                            .await;
                        match answer {
                            Ok(a) if a.status().as_u16() == 202 => {
                                let _ = a.bytes().await;
                                latencies.lock().expect("lock").push(sent.elapsed());
                            }
                            _ => {
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    });
    let elapsed = started.elapsed();
    let mut latencies = std::mem::take(&mut *latencies.lock().expect("lock"));
    latencies.sort();
    Cell {
        name: String::new(),
        accepted: latencies.len(),
        failed: failed.load(Ordering::Relaxed),
        elapsed,
        latencies,
        rss_mib: servers.iter().map(Server::peak_rss_mib).collect(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> String {
    if sorted.is_empty() {
        return "-".into();
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    format!("{:.0} ms", sorted[i].as_secs_f64() * 1000.0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let options = options();
    let test = "replicas bench";
    let scratch = tempfile::tempdir().expect("scratch");
    let mut cells = Vec::new();

    let sqlite = start(&scratch.path().join("sqlite"), &[], &[]);
    let bearer = format!("Bearer {}", admin_token(&scratch.path().join("sqlite")));
    let mut cell = drive(std::slice::from_ref(&sqlite), &bearer, &options, 0);
    cell.name = "sqlite x1".into();
    cells.push(cell);
    drop(sqlite);

    let (Some(pg), Some(s3)) = (Postgres::start(test), Moto::start(test)) else {
        print(&options, &cells);
        return;
    };
    for (count, db) in [(1usize, "one"), (3, "three")] {
        pg.psql(&format!("CREATE DATABASE {db}"));
        let url = pg
            .url
            .rsplit_once('/')
            .map_or(pg.url.clone(), |(base, _)| format!("{base}/{db}"));
        let extra: Vec<String> = vec![
            "--database-url".into(),
            url,
            "--content-url".into(),
            s3.url(db),
        ];
        let first = scratch.path().join(format!("{db}-0"));
        let mut servers = vec![start(&first, &extra, &s3.env())];
        for i in 1..count {
            let data = scratch.path().join(format!("{db}-{i}"));
            std::fs::create_dir_all(&data).expect("data dir");
            for file in ["operator.key", "custodial.key"] {
                std::fs::copy(first.join(file), data.join(file)).expect("copy key");
            }
            servers.push(start(&data, &extra, &s3.env()));
        }
        let bearer = format!("Bearer {}", admin_token(&first));
        let mut cell = drive(&servers, &bearer, &options, 10_000_000 * count);
        cell.name = format!("pg+s3 x{count}");
        cells.push(cell);
    }
    print(&options, &cells);
    if std::env::var_os("CAIRN_BENCH_SMOKE").is_some() {
        for cell in &cells {
            assert!(cell.accepted > 0, "{}: nothing accepted", cell.name);
        }
    }
}

fn print(options: &Options, cells: &[Cell]) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "\nDurable publishes (init records, answered after the commit), {} in flight for {} s, \
         {cores} cores (servers, PostgreSQL, moto and the load generator share them):\n",
        options.in_flight, options.seconds
    );
    println!(
        "| cell | accepted/s | p50 | p99 | failed | peak RSS per server |\n|---|---|---|---|---|---|"
    );
    for cell in cells {
        println!(
            "| {} | {:.0} | {} | {} | {} | {} |",
            cell.name,
            cell.accepted as f64 / cell.elapsed.as_secs_f64(),
            percentile(&cell.latencies, 0.5),
            percentile(&cell.latencies, 0.99),
            cell.failed,
            cell.rss_mib
                .iter()
                .map(|m| format!("{m} MiB"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}
