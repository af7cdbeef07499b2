//! While replicas hand over the lead, a registry answers 503 (or 502) for
//! a second or two: the client sends the request again, after the wait the
//! registry asks for, a bounded number of times.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_client::api::{Api, TAKEOVER_TRIES};
use cairn_client::Error;

/// A server on 127.0.0.1 that answers `unavailable` requests with 503 and
/// `Retry-After: 1`, then 200; returns its URL and its request count.
fn server(unavailable: u32) -> (String, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let count = Arc::new(AtomicU32::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
            let answer = if n <= unavailable {
                "HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-type: application/json\r\n\
                 content-length: 53\r\nconnection: close\r\n\r\n\
                 {\"status\":503,\"message\":\"no replica leads right now\"}"
            } else {
                "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            };
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (url, count)
}

#[test]
fn a_request_is_sent_again_while_the_registry_takes_over() {
    let (url, count) = server(2);
    let api = Api::new(&url, None).expect("api");
    let started = Instant::now();
    api.check_token().expect("answered once a replica leads");
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited as asked"
    );
}

#[test]
fn a_registry_that_stays_unavailable_is_reported_after_a_few_tries() {
    let (url, count) = server(u32::MAX);
    let api = Api::new(&url, None).expect("api");
    match api.check_token() {
        Err(Error::Refused {
            status: 503,
            message,
            ..
        }) => {
            assert!(message.contains("no replica leads"), "{message}")
        }
        other => panic!("expected a 503: {other:?}"),
    }
    assert_eq!(count.load(Ordering::SeqCst), TAKEOVER_TRIES);
}
