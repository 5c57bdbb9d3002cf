//! The HTTP/1.1 accept loop, with bounded header sizes and read timeouts.

use std::{
    future::Future,
    io::{self, IoSlice},
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
};

/// Bytes hyper buffers for a request head: bounds headers (hyper's minimum is 8 KiB).
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// A client must send its whole request head within this time (slowloris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` completes, then lets in-flight requests
/// finish (up to 10 s).
pub async fn serve(listener: TcpListener, router: Router, shutdown: impl Future<Output = ()>) {
    serve_on(&listener, router, shutdown).await;
    drop(listener);
}

/// Serves `router` on a borrowed `listener` until `shutdown`, closing its connections after
/// that (up to 10 s): the listener stays bound for what serves next.
pub async fn serve_on(listener: &TcpListener, router: Router, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Typically EMFILE: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let mut builder = http1::Builder::new();
                builder
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .max_buf_size(MAX_HEAD_BYTES)
                    .max_headers(64)
                    .keep_alive(true);
                // Handlers that need the peer address (registration rate limits) read it as
                // axum's ConnectInfo.
                let service = tower::ServiceExt::map_request(router.clone(), move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                    request
                });
                let connection = builder.serve_connection(TokioIo::new(ConsolidatedWrites::new(stream)), TowerToHyperService::new(service));
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after 10 s; closing");
    }
}

/// A connection whose answer goes out after the requests already waiting on other
/// connections have been handled, as Netty's `FlushConsolidationHandler` does.
///
/// Under load, a response written to a client that sleeps waiting for it has the kernel wake
/// that client, and on a VM the wake-up is an inter-processor interrupt that costs the
/// writing core as much as the whole of a small request (`make bench-flamegraph`: a quarter
/// of client_credentials was `writev`, most of it `sock_def_readable` waking the client).
/// Deferring each answer once, behind the connections the runtime has already found ready,
/// sends the answers of one pass in a burst: the first wakes the client, the others find
/// it awake. An idle server runs the deferred task at once (it is alone in the run queue),
/// so the answer is late by one pass of the scheduler, well under a microsecond.
struct ConsolidatedWrites<S> {
    inner: S,
    /// Whether this answer has already been deferred once; bytes read (the next request)
    /// start the next answer.
    deferred: bool,
}

impl<S> ConsolidatedWrites<S> {
    fn new(inner: S) -> Self {
        Self { inner, deferred: false }
    }

    /// `Pending` the first time an answer is written, with the task woken at once: tokio
    /// treats a task that wakes itself while it runs as one that yields, and queues it
    /// behind the tasks already ready (both schedulers: `Schedule::yield_now`).
    fn defer_once(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.deferred {
            return Poll::Ready(());
        }
        self.deferred = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ConsolidatedWrites<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let filled = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        // hyper polls for reads while an answer waits to be written: only bytes read (the
        // next request) start a new answer, or the deferral would repeat for ever.
        if buf.filled().len() > filled {
            self.deferred = false;
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ConsolidatedWrites<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        std::task::ready!(self.defer_once(cx));
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.defer_once(cx));
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            Arc, Mutex,
            atomic::{AtomicUsize, Ordering},
        },
        task::{Wake, Waker},
    };

    use super::*;

    /// A connection that is always writable, and readable while it holds bytes.
    #[derive(Default)]
    struct Loopback {
        incoming: Vec<u8>,
        written: Vec<u8>,
    }

    impl AsyncRead for Loopback {
        fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            if self.incoming.is_empty() {
                return Poll::Pending;
            }
            let n = buf.remaining().min(self.incoming.len());
            buf.put_slice(&self.incoming[..n]);
            self.incoming.drain(..n);
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Loopback {
        fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.written.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn write(stream: &mut ConsolidatedWrites<Loopback>, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<usize> {
        Pin::new(stream).poll_write(cx, bytes).map(|written| written.unwrap())
    }

    fn read(stream: &mut ConsolidatedWrites<Loopback>, cx: &mut Context<'_>) -> Poll<usize> {
        let mut space = [0u8; 64];
        let mut buf = ReadBuf::new(&mut space);
        Pin::new(stream).poll_read(cx, &mut buf).map(|read| {
            read.unwrap();
            buf.filled().len()
        })
    }

    #[test]
    fn an_answer_is_deferred_once_with_the_task_woken() {
        let woken = Arc::new(CountingWaker::default());
        let waker = Waker::from(woken.clone());
        let mut cx = Context::from_waker(&waker);
        let mut stream = ConsolidatedWrites::new(Loopback::default());

        assert_eq!(write(&mut stream, &mut cx, b"HTTP/1.1 200 OK\r\n"), Poll::Pending);
        assert_eq!(woken.0.load(Ordering::SeqCst), 1, "a deferred task must be woken, or it never runs again");
        // hyper looks for the next request meanwhile; none has come: still the same answer.
        assert_eq!(read(&mut stream, &mut cx), Poll::Pending);
        assert_eq!(write(&mut stream, &mut cx, b"HTTP/1.1 200 OK\r\n"), Poll::Ready(17));
        assert_eq!(write(&mut stream, &mut cx, b"{}"), Poll::Ready(2), "the rest of an answer is not deferred");
        assert_eq!(stream.inner.written, b"HTTP/1.1 200 OK\r\n{}");
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_next_request_starts_the_next_deferral() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut stream = ConsolidatedWrites::new(Loopback::default());
        assert_eq!(write(&mut stream, &mut cx, b"first"), Poll::Pending);
        assert_eq!(write(&mut stream, &mut cx, b"first"), Poll::Ready(5));

        stream.inner.incoming = b"POST /token HTTP/1.1\r\n".to_vec();
        assert_eq!(read(&mut stream, &mut cx), Poll::Ready(22));
        assert_eq!(write(&mut stream, &mut cx, b"second"), Poll::Pending);
        assert_eq!(write(&mut stream, &mut cx, b"second"), Poll::Ready(6));
        assert_eq!(stream.inner.written, b"firstsecond");
    }

    /// On one worker (the per-core configuration of `make bench-peers`), a deferred answer is
    /// written after the tasks that were ready before it ran.
    #[tokio::test(flavor = "current_thread")]
    async fn the_answer_goes_out_after_the_connections_already_ready() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let answering = tokio::spawn({
            let order = order.clone();
            async move {
                let mut stream = ConsolidatedWrites::new(Loopback::default());
                std::future::poll_fn(|cx| Pin::new(&mut stream).poll_write(cx, b"answer")).await.unwrap();
                order.lock().unwrap().push("answer written");
            }
        });
        let other = tokio::spawn({
            let order = order.clone();
            async move { order.lock().unwrap().push("other connection handled") }
        });
        answering.await.unwrap();
        other.await.unwrap();
        assert_eq!(*order.lock().unwrap(), ["other connection handled", "answer written"]);
    }
}
