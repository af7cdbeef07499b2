//! Answers the sequencer gives later: futures a caller awaits, or blocks
//! on from a thread that is not an async worker.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Instant;

use tokio::sync::{oneshot, watch};

use crate::error::SubmitError;

/// The answer to a command sent to the sequencer: await it, or
/// [`Answer::wait`] for it on a blocking thread. If the sequencer stops
/// before answering, the answer is [`SubmitError::Stopped`].
#[must_use = "an answer does nothing unless awaited or waited for"]
#[derive(Debug)]
pub struct Answer<T> {
    rx: oneshot::Receiver<Result<T, SubmitError>>,
}

/// Where the sequencer puts an [`Answer`].
pub(crate) type Reply<T> = oneshot::Sender<Result<T, SubmitError>>;

impl<T> Answer<T> {
    /// A new answer and the sender that gives it.
    pub(crate) fn new() -> (Reply<T>, Answer<T>) {
        let (tx, rx) = oneshot::channel();
        (tx, Answer { rx })
    }

    /// Blocks this thread until the answer comes. Not for async workers.
    pub fn wait(self) -> Result<T, SubmitError> {
        block_on(self, None).unwrap_or(Err(SubmitError::Stopped))
    }
}

impl<T> Future for Answer<T> {
    type Output = Result<T, SubmitError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(SubmitError::Stopped)))
    }
}

/// Waits until the log length of the latest checkpoint passes `index`,
/// i.e. the record at `index` is published. Resolves to `false` if the
/// registry stops first.
pub(crate) async fn checkpointed(mut rx: watch::Receiver<u64>, index: u64) -> bool {
    rx.wait_for(|length| *length > index).await.is_ok()
}

/// Wakes a parked thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` on this thread until it completes, or until `deadline`
/// (then `None`). Futures here only wait on channels, never on IO.
pub fn block_on<F: Future>(future: F, deadline: Option<Instant>) -> Option<F::Output> {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return Some(out);
        }
        match deadline {
            None => std::thread::park(),
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return None;
                }
                std::thread::park_timeout(left);
            }
        }
    }
}
