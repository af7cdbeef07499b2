//! The server's limits, each tried over HTTP against a real server: the
//! header-read and idle timeouts, the connection cap, rate limits, JSON
//! body sizes, upload sessions per account and in all, a full disk, and
//! the health and metrics endpoints.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cairn_interop::http::Http;
use cairn_interop::server::{TestOptions, TestServer};
use cairn_registry::oci::OciConfig;
use cairn_server::{Limits, Rate, RateLimits, ServerOptions};
use reqwest::{Method, StatusCode};

fn start(options: ServerOptions, oci: OciConfig) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start_options(
        dir.path(),
        &["acme"],
        TestOptions {
            oci,
            server: options,
            ..TestOptions::default()
        },
    );
    (server, dir)
}

fn short_timeouts(header: u64, idle: u64) -> ServerOptions {
    ServerOptions {
        connections: Limits {
            header_read_timeout: Duration::from_secs(header),
            idle_timeout: Duration::from_secs(idle),
            ..Limits::default()
        },
        ..ServerOptions::default()
    }
}

/// Reads until the server closes the connection or `limit` passes;
/// returns what arrived and whether it closed.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    stream.set_read_timeout(Some(limit)).expect("read timeout");
    let mut got = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buffer[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (got, false)
            }
            Err(_) => return (got, true),
        }
    }
}

#[test]
fn a_half_sent_request_is_dropped_after_the_header_read_timeout() {
    let (server, _dir) = start(short_timeouts(1, 30), OciConfig::default());
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    stream
        .write_all(b"GET /v1/fetch/checkpoint HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .expect("write");
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(10));
    assert!(closed, "a half-sent request must not hold its connection");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed after {:?}",
        started.elapsed()
    );
}

#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let (server, _dir) = start(short_timeouts(1, 30), OciConfig::default());
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("write");
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(10));
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed, "an idle keep-alive connection must be closed");
}

#[test]
fn a_stalled_body_is_dropped_after_the_idle_timeout() {
    let (server, _dir) = start(short_timeouts(5, 1), OciConfig::default());
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    stream
        .write_all(
            b"POST /v1/fetch/logs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
              Content-Length: 1000\r\n\r\n{\"logLength\":",
        )
        .expect("write");
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(15));
    assert!(closed, "a stalled body must not hold its connection");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "closed after {:?}",
        started.elapsed()
    );
}

#[test]
fn past_the_connection_cap_new_connections_wait_for_a_free_slot() {
    let options = ServerOptions {
        connections: Limits {
            header_read_timeout: Duration::from_secs(2),
            max_connections: 4,
            ..Limits::default()
        },
        ..ServerOptions::default()
    };
    let (server, _dir) = start(options, OciConfig::default());
    // Four silent connections take every slot.
    let idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(server.addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut waiting = TcpStream::connect(server.addr).expect("connect (queued by the kernel)");
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .expect("write");
    let (early, _) = read_until_closed(&mut waiting, Duration::from_millis(500));
    assert!(
        early.is_empty(),
        "a fifth connection is served only once a slot frees"
    );
    // The silent ones time out, and the waiting request is answered.
    let (answer, _) = read_until_closed(&mut waiting, Duration::from_secs(10));
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(idle);
    let metrics = Http::new(&server.url).send(Method::GET, "/metrics", &[], Vec::new());
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.lines()
            .any(|l| l.starts_with("cairn_connections_capped_total ") && !l.ends_with(" 0")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("cairn_connections_timed_out_total ") && !l.ends_with(" 0")),
        "{text}"
    );
}

#[test]
fn rate_limits_answer_429_with_retry_after_in_each_face_s_shape() {
    let options = ServerOptions {
        rate_limits: RateLimits {
            per_ip: Rate {
                per_second: 1.0,
                burst: 5.0,
            },
            ..RateLimits::default()
        },
        ..ServerOptions::default()
    };
    let (server, _dir) = start(options, OciConfig::default());
    let http = Http::new(&server.url);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            http.send(Method::GET, "/v1/fetch/checkpoint", &[], Vec::new())
                .status,
        );
    }
    assert!(statuses[..5]
        .iter()
        .all(|s| *s != StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(statuses[5], StatusCode::TOO_MANY_REQUESTS);
    let warg = http.send(Method::GET, "/v1/fetch/checkpoint", &[], Vec::new());
    assert_eq!(warg.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = warg.header("retry-after").parse().expect("Retry-After");
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(warg.json()["status"], 429);
    assert!(warg.json()["message"]
        .as_str()
        .expect("message")
        .contains("too many requests"));
    let oci = http.send(Method::GET, "/v2/acme/x/tags/list", &[], Vec::new());
    assert_eq!(oci.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(oci.json()["errors"][0]["code"], "TOOMANYREQUESTS");
    let metrics = server_metrics_after_refill(&http);
    assert!(
        metrics.contains("cairn_rate_limited_total{kind=\"ip\"}"),
        "{metrics}"
    );
}

fn server_metrics_after_refill(http: &Http) -> String {
    std::thread::sleep(Duration::from_millis(1100));
    let reply = http.send(Method::GET, "/metrics", &[], Vec::new());
    assert_eq!(reply.status, StatusCode::OK);
    String::from_utf8_lossy(&reply.body).into_owned()
}

#[test]
fn a_token_has_its_own_rate_limit() {
    let options = ServerOptions {
        rate_limits: RateLimits {
            per_token: Rate {
                per_second: 1.0,
                burst: 3.0,
            },
            ..RateLimits::default()
        },
        ..ServerOptions::default()
    };
    let (server, _dir) = start(options, OciConfig::default());
    let http = Http::new(&server.url);
    let token = server.token("alice", &["pull"], None);
    let bearer = format!("Bearer {token}");
    let with = |n: usize| {
        (0..n)
            .map(|_| {
                http.send(
                    Method::GET,
                    "/v1/fetch/checkpoint",
                    &[("authorization", &bearer)],
                    Vec::new(),
                )
                .status
            })
            .collect::<Vec<_>>()
    };
    let statuses = with(4);
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    // Without the token the address is still served.
    let anonymous = http.send(Method::GET, "/v1/fetch/checkpoint", &[], Vec::new());
    assert_ne!(anonymous.status, StatusCode::TOO_MANY_REQUESTS);
}

#[test]
fn a_json_body_over_its_limit_is_refused_with_413() {
    let options = ServerOptions {
        max_json_body: 1024,
        ..ServerOptions::default()
    };
    let (server, _dir) = start(options, OciConfig::default());
    let http = Http::new(&server.url);
    let body = format!(
        "{{\"logLength\":1,\"packages\":{{}},\"padding\":\"{}\"}}",
        "x".repeat(4096)
    );
    let reply = http.send(
        Method::POST,
        "/v1/fetch/logs",
        &[("content-type", "application/json")],
        body.into_bytes(),
    );
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.json()["status"], 413);
}

#[test]
fn upload_sessions_are_limited_per_account_and_in_all() {
    let oci = OciConfig {
        max_uploads_per_account: 3,
        max_uploads: 5,
        ..OciConfig::default()
    };
    let (server, _dir) = start(ServerOptions::default(), oci);
    let http = Http::new(&server.url);
    let alice = format!(
        "Bearer {}",
        server.token("alice", &["publish:acme/*"], None)
    );
    let bob = format!("Bearer {}", server.token("bob", &["publish:acme/*"], None));
    let start = |bearer: &str| {
        http.send(
            Method::POST,
            "/v2/acme/thing/blobs/uploads/",
            &[("authorization", bearer)],
            Vec::new(),
        )
    };
    let mut alice_sessions = Vec::new();
    for _ in 0..3 {
        let reply = start(&alice);
        assert_eq!(reply.status, StatusCode::ACCEPTED);
        alice_sessions.push(reply.header("location"));
    }
    let refused = start(&alice);
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.json()["errors"][0]["code"], "TOOMANYREQUESTS");
    let message = refused.json()["errors"][0]["message"]
        .as_str()
        .expect("message")
        .to_owned();
    assert!(
        message.contains("`alice` has 3 upload sessions open"),
        "{message}"
    );
    // Another account still may, up to the registry's total.
    assert_eq!(start(&bob).status, StatusCode::ACCEPTED);
    assert_eq!(start(&bob).status, StatusCode::ACCEPTED);
    let full = start(&bob);
    assert_eq!(full.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(full.json()["errors"][0]["message"]
        .as_str()
        .expect("message")
        .contains("the registry has 5 upload sessions open"));
    // Cancelling one frees a place.
    let cancelled = http.send(
        Method::DELETE,
        &alice_sessions[0],
        &[("authorization", &alice)],
        Vec::new(),
    );
    assert!(cancelled.status.is_success(), "{}", cancelled.status);
    assert_eq!(start(&alice).status, StatusCode::ACCEPTED);
    let metrics = http.send(Method::GET, "/metrics", &[], Vec::new());
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(text.contains("cairn_upload_sessions_open 5"), "{text}");
}

#[test]
fn health_readiness_metrics_and_request_ids() {
    let (server, _dir) = start(ServerOptions::default(), OciConfig::default());
    let http = Http::new(&server.url);
    let health = http.send(Method::GET, "/healthz", &[], Vec::new());
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json()["status"], "ok");
    let ready = http.send(Method::GET, "/readyz", &[], Vec::new());
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.json());
    assert_eq!(ready.json()["status"], "ready");
    // Every answer carries a request id; a plain one from the client is kept.
    let generated = http.send(Method::GET, "/v1/fetch/checkpoint", &[], Vec::new());
    assert_eq!(generated.header("x-request-id").len(), 16);
    let echoed = http.send(
        Method::GET,
        "/v1/fetch/checkpoint",
        &[("x-request-id", "trace-42")],
        Vec::new(),
    );
    assert_eq!(echoed.header("x-request-id"), "trace-42");
    let _ = http.send(Method::GET, "/v2/acme/x/manifests/1.0.0", &[], Vec::new());
    let metrics = http.send(Method::GET, "/metrics", &[], Vec::new());
    assert_eq!(metrics.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&metrics.body);
    for needle in [
        "cairn_http_requests_total{route=\"/v1/fetch/checkpoint\",method=\"GET\",status=\"200\"} 2",
        "cairn_http_requests_total{route=\"oci:manifest\",method=\"GET\",status=\"404\"} 1",
        "cairn_http_request_duration_seconds_bucket{",
        "cairn_log_length ",
        "cairn_checkpoint_lag_records 0",
        "cairn_connections_open ",
        "cairn_upload_sessions_open 0",
    ] {
        assert!(text.contains(needle), "metrics lack `{needle}`:\n{text}");
    }
}

#[test]
fn metrics_need_a_token_when_anonymous_pull_is_off() {
    let options = ServerOptions {
        anonymous_pull: false,
        ..ServerOptions::default()
    };
    let (server, _dir) = start(options, OciConfig::default());
    let http = Http::new(&server.url);
    let refused = http.send(Method::GET, "/metrics", &[], Vec::new());
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let token = server.token("scraper", &["pull"], None);
    let allowed = http.send(
        Method::GET,
        "/metrics",
        &[("authorization", &format!("Bearer {token}"))],
        Vec::new(),
    );
    assert_eq!(allowed.status, StatusCode::OK);
    // Health stays open for load balancers.
    assert_eq!(
        http.send(Method::GET, "/healthz", &[], Vec::new()).status,
        StatusCode::OK
    );
}
