//! A C2SP witness (`cairn witness`'s service) in-process on a loopback
//! address, for tests and benchmarks of witnessing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use cairn_registry::SystemClock;
use cairn_server::Witness;
use cairn_store::WitnessState;
use tokio::sync::oneshot;

/// A witness serving on `ip`, on a runtime thread of its own.
pub struct RunningWitness {
    /// `http://<ip>:<port>`.
    pub url: String,
    /// Its cosigning key, as a verifier key.
    pub key: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningWitness {
    /// Starts a witness of the log whose verifier key is `log`, named
    /// `name`, keeping its state in `dir`, on `ip:port` (0: any port).
    pub fn start(ip: [u8; 4], port: u16, dir: &Path, name: &str, log: &str) -> RunningWitness {
        let state = Arc::new(WitnessState::open(dir).expect("witness state"));
        let key = state.key(name).expect("witness key");
        let vkey = key.verifier().to_string();
        let log_key = cairn_transparency::note::Verifier::parse(log).expect("log vkey");
        let logs = HashMap::from([(log_key.name().to_owned(), vec![log_key])]);
        let witness = Arc::new(Witness {
            key,
            logs,
            state,
            clock: Arc::new(SystemClock),
        });
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let addr = SocketAddr::from((ip, port));
        let thread = std::thread::spawn(move || {
            let runtime = cairn_server::runtime(Some(1)).expect("runtime");
            runtime.block_on(async move {
                let listener = cairn_server::bind(addr).expect("bind");
                let _ = bound_tx.send(listener.local_addr().expect("address"));
                let stop = async move {
                    let _ = stop_rx.await;
                };
                cairn_server::serve_witness(listener, witness, stop)
                    .await
                    .expect("serve");
            });
        });
        let addr = bound_rx.recv().expect("bound");
        RunningWitness {
            url: format!("http://{addr}"),
            key: vkey,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }
}

impl Drop for RunningWitness {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
