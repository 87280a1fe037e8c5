//! A TCP proxy that gives a local S3 server the latency of a remote one, for
//! the end-to-end benchmark (benches/e2e, `--s3-latency`).
//!
//! ```text
//! cargo run --release -p s3-latency-proxy -- \
//!     --listen 127.0.0.1:9001 --upstream 127.0.0.1:9000 --median-ms 25 --p99-ms 150
//! ```
//!
//! Each request's answer is held back before its first byte so that it comes
//! a delay drawn from a log-normal distribution (the given median and 99th
//! percentile) after the request's last byte went to the server, or when the
//! server answers if that is later: the answer time a client sees is the
//! profile's, the local server's own time inside it (`--delay-from request`,
//! the default). With `--delay-from answer` the delay starts when the server
//! answers and comes on top of its time, which makes answers slower than the
//! profile by the local server's time (how the benchmark ran before
//! 2026-12-06). Either way the rest of the answer follows unhindered. That is
//! time to first byte, the latency object stores publish and the one a PUT or
//! a small GET is made of.
//! The proxy knows nothing of HTTP: on a connection, the first bytes the server
//! sends after the client has sent something are an answer's first. That holds
//! for HTTP/1.1 without pipelining and without `Expect: 100-continue`, which is
//! how the S3 client the broker uses talks. A request through a second
//! connection draws its own delay, as a retried or hedged request does on S3.
//!
//! With `--counts FILE` it also counts the requests by the classes S3 bills
//! (PUT, POST, LIST, GET, HEAD, DELETE), read from each request's first line,
//! and rewrites FILE with the totals every 200 ms and at the end: how the
//! benchmark counts the requests of a broker that reports none itself.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// The 99th percentile of the standard normal distribution.
const Z_99: f64 = 2.326_347_874;
/// No single delay longer than this, whatever the tail parameters say.
const MAX_DELAY: Duration = Duration::from_secs(5);

struct Options {
    listen: SocketAddr,
    upstream: SocketAddr,
    median_ms: f64,
    p99_ms: f64,
    seed: u64,
    counts: Option<PathBuf>,
    delay_from: DelayFrom,
}

/// Where a drawn delay starts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DelayFrom {
    /// The request's last byte: the answer time is the draw, or the server's
    /// own time if that is longer.
    Request,
    /// The server's first answer byte: the draw comes on top of its time.
    Answer,
}

fn usage() -> &'static str {
    "usage: s3-latency-proxy --listen HOST:PORT --upstream HOST:PORT \
     [--median-ms 25] [--p99-ms 150] [--delay-from request|answer] [--seed N] [--counts FILE]"
}

fn parse_options() -> Result<Options, String> {
    let mut listen = None;
    let mut upstream = None;
    let mut median_ms = 25.0;
    let mut p99_ms = 150.0;
    let mut seed = 0x5eed_5eed_5eed_5eed;
    let mut counts = None;
    let mut delay_from = DelayFrom::Request;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--listen" => listen = Some(value.parse().map_err(|e| bad(&e))?),
            "--upstream" => upstream = Some(value.parse().map_err(|e| bad(&e))?),
            "--median-ms" => median_ms = value.parse().map_err(|e| bad(&e))?,
            "--p99-ms" => p99_ms = value.parse().map_err(|e| bad(&e))?,
            "--seed" => seed = value.parse().map_err(|e| bad(&e))?,
            "--counts" => counts = Some(PathBuf::from(value)),
            "--delay-from" => {
                delay_from = match value.as_str() {
                    "request" => DelayFrom::Request,
                    "answer" => DelayFrom::Answer,
                    _ => return Err(bad(&"want request or answer")),
                }
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    if !(median_ms > 0.0 && p99_ms >= median_ms) {
        return Err("need 0 < --median-ms <= --p99-ms".into());
    }
    Ok(Options {
        listen: listen.ok_or("--listen is required")?,
        upstream: upstream.ok_or("--upstream is required")?,
        median_ms,
        p99_ms,
        seed,
        counts,
        delay_from,
    })
}

/// S3's request classes, as billed: the first word of a request line, a GET
/// of a bucket with a listing query counted as LIST.
const CLASSES: [&str; 7] = ["PUT", "POST", "LIST", "GET", "HEAD", "DELETE", "OTHER"];

/// Requests seen so far, per class (in `CLASSES` order).
#[derive(Default)]
struct Counts([AtomicU64; CLASSES.len()]);

impl Counts {
    /// Counts the request whose first bytes are `start`.
    fn add(&self, start: &[u8]) {
        let line = start.split(|&b| b == b'\r').next().unwrap_or(start);
        let class = match line.split(|&b| b == b' ').next().unwrap_or(b"") {
            b"GET" if is_listing(line) => "LIST",
            b"PUT" => "PUT",
            b"POST" => "POST",
            b"GET" => "GET",
            b"HEAD" => "HEAD",
            b"DELETE" => "DELETE",
            _ => "OTHER",
        };
        let i = CLASSES
            .iter()
            .position(|c| *c == class)
            .unwrap_or(CLASSES.len() - 1);
        self.0[i].fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self) -> String {
        CLASSES
            .iter()
            .zip(&self.0)
            .map(|(class, n)| format!("{class} {}\n", n.load(Ordering::Relaxed)))
            .collect()
    }
}

/// A ListObjects (v1 or v2) request line: a query naming a list type or a
/// prefix (a GET of one object has neither).
fn is_listing(line: &[u8]) -> bool {
    let line = String::from_utf8_lossy(line);
    let query = line.split_once('?').map_or("", |(_, q)| q);
    query
        .split(['&', ' '])
        .any(|p| p.starts_with("list-type=") || p.starts_with("prefix=") || p == "delimiter")
}

/// Rewrites `path` with the counts every 200 ms (through a temporary file,
/// so a reader never sees half of it).
async fn write_counts(path: PathBuf, counts: Arc<Counts>) {
    let tmp = path.with_extension("tmp");
    loop {
        if std::fs::write(&tmp, counts.render()).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Log-normal delays from a small seeded generator (xorshift64*), so that two
/// runs of the benchmark see the same sequence of draws.
struct Delays {
    mu: f64,
    sigma: f64,
    state: AtomicU64,
}

impl Delays {
    fn new(median_ms: f64, p99_ms: f64, seed: u64) -> Self {
        Delays {
            mu: median_ms.ln(),
            sigma: (p99_ms.ln() - median_ms.ln()) / Z_99,
            state: AtomicU64::new(seed | 1),
        }
    }

    /// A uniform draw in (0, 1].
    fn uniform(&self) -> f64 {
        let mut x = self.state.load(Ordering::Relaxed);
        loop {
            let mut next = x;
            next ^= next >> 12;
            next ^= next << 25;
            next ^= next >> 27;
            match self
                .state
                .compare_exchange_weak(x, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    let bits = next.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
                    return (bits as f64 + 1.0) / (1u64 << 53) as f64;
                }
                Err(seen) => x = seen,
            }
        }
    }

    fn next(&self) -> Duration {
        // Box-Muller: one standard normal draw from two uniform ones.
        let (u1, u2) = (self.uniform(), self.uniform());
        let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let ms = (self.mu + self.sigma * normal).exp();
        Duration::from_secs_f64(ms / 1000.0).min(MAX_DELAY)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("s3-latency-proxy: {e}\n{}", usage());
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(options.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("s3-latency-proxy: cannot listen on {}: {e}", options.listen);
            std::process::exit(1);
        }
    };
    let delays = Arc::new(Delays::new(options.median_ms, options.p99_ms, options.seed));
    let counts = Arc::new(Counts::default());
    if let Some(path) = options.counts.clone() {
        tokio::spawn(write_counts(path, Arc::clone(&counts)));
    }
    eprintln!(
        "s3-latency-proxy: {} -> {}, first byte of each answer a log-normal delay \
         (median {} ms, p99 {} ms) after the {}",
        options.listen,
        options.upstream,
        options.median_ms,
        options.p99_ms,
        match options.delay_from {
            DelayFrom::Request => "request's last byte (or the server's answer, if later)",
            DelayFrom::Answer => "server's answer",
        }
    );
    loop {
        let (client, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("s3-latency-proxy: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let delays = Arc::clone(&delays);
        let counts = Arc::clone(&counts);
        let upstream = options.upstream;
        let delay_from = options.delay_from;
        tokio::spawn(async move {
            if let Err(e) = proxy(client, upstream, delays, delay_from, counts).await {
                eprintln!("s3-latency-proxy: connection ended: {e}");
            }
        });
    }
}

async fn proxy(
    client: TcpStream,
    upstream: SocketAddr,
    delays: Arc<Delays>,
    delay_from: DelayFrom,
    counts: Arc<Counts>,
) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let owed = Arc::new(Owed::default());
    let requests = requests(client_read, server_write, Arc::clone(&owed), counts);
    let answers = answers(server_read, client_write, owed, delays, delay_from);
    // Either side closing ends the connection, as a direct one would.
    tokio::select! {
        result = requests => result,
        result = answers => result,
    }
}

/// A connection's request in flight: whether an answer is owed, and when the
/// request's last byte so far went to the server.
struct Owed {
    answer: AtomicBool,
    /// Nanoseconds since `epoch`.
    last_request_byte: AtomicU64,
    epoch: Instant,
}

impl Default for Owed {
    fn default() -> Self {
        Owed {
            answer: AtomicBool::new(false),
            last_request_byte: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl Owed {
    fn request_byte_sent(&self) {
        let nanos = self.epoch.elapsed().as_nanos() as u64;
        self.last_request_byte.store(nanos, Ordering::Release);
    }

    fn last_request_byte(&self) -> Instant {
        self.epoch + Duration::from_nanos(self.last_request_byte.load(Ordering::Acquire))
    }
}

/// Client to server, marking that an answer is owed. Bytes sent while no
/// answer is owed begin a request (without pipelining, the next request
/// starts only after the last answer did), and are counted.
async fn requests(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    owed: Arc<Owed>,
    counts: Arc<Counts>,
) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buffer).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        if !owed.answer.swap(true, Ordering::AcqRel) {
            counts.add(&buffer[..n]);
        }
        to.write_all(&buffer[..n]).await?;
        owed.request_byte_sent();
    }
}

/// Server to client, holding back the first bytes of each answer.
async fn answers(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    owed: Arc<Owed>,
    delays: Arc<Delays>,
    delay_from: DelayFrom,
) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = from.read(&mut buffer).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        if owed.answer.swap(false, Ordering::AcqRel) {
            let start = match delay_from {
                DelayFrom::Request => owed.last_request_byte(),
                DelayFrom::Answer => Instant::now(),
            };
            tokio::time::sleep_until((start + delays.next()).into()).await;
        }
        to.write_all(&buffer[..n]).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_billing_class() {
        let counts = Counts::default();
        for start in [
            &b"PUT /bucket/a/b.obj HTTP/1.1\r\nHost: x\r\n"[..],
            b"GET /bucket/a/b.obj HTTP/1.1\r\n",
            b"GET /bucket?list-type=2&prefix=a%2F HTTP/1.1\r\n",
            b"GET /bucket/?prefix=a&delimiter=%2F HTTP/1.1\r\n",
            b"POST /bucket/a?uploads HTTP/1.1\r\n",
            b"HEAD /bucket/a HTTP/1.1\r\n",
            b"DELETE /bucket/a HTTP/1.1\r\n",
            b"\x16\x03\x01",
        ] {
            counts.add(start);
        }
        assert_eq!(
            counts.render(),
            "PUT 1\nPOST 1\nLIST 2\nGET 1\nHEAD 1\nDELETE 1\nOTHER 1\n"
        );
    }

    /// One request through a proxy whose every delay is `delay` (median and
    /// p99 equal), to a server that answers `server_time` after reading it:
    /// the client's time to the answer.
    async fn answer_time(
        delay_from: DelayFrom,
        delay: Duration,
        server_time: Duration,
    ) -> Duration {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = server.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = server.accept().await.unwrap();
            let mut request = [0u8; 64];
            let _ = socket.read(&mut request).await.unwrap();
            tokio::time::sleep(server_time).await;
            socket.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listen = listener.local_addr().unwrap();
        let ms = delay.as_secs_f64() * 1000.0;
        let delays = Arc::new(Delays::new(ms, ms, 1));
        tokio::spawn(async move {
            let (client, _) = listener.accept().await.unwrap();
            let _ = proxy(client, upstream, delays, delay_from, Arc::default()).await;
        });
        let mut client = TcpStream::connect(listen).await.unwrap();
        let start = Instant::now();
        client
            .write_all(b"PUT /b/k HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0u8; 64];
        assert!(client.read(&mut answer).await.unwrap() > 0);
        start.elapsed()
    }

    #[tokio::test]
    async fn the_delay_starts_at_the_request_or_at_the_answer() {
        let (delay, server_time) = (Duration::from_millis(300), Duration::from_millis(300));
        // The server's time is inside the drawn delay: about 300 ms, not 600.
        let total = answer_time(DelayFrom::Request, delay, server_time).await;
        assert!(total >= delay, "{total:?}");
        assert!(
            total < delay + server_time - Duration::from_millis(100),
            "{total:?}"
        );
        // On top of it: at least 600 ms.
        let added = answer_time(DelayFrom::Answer, delay, server_time).await;
        assert!(added >= delay + server_time, "{added:?}");
    }

    #[test]
    fn delays_have_the_asked_median_and_tail() {
        let delays = Delays::new(25.0, 150.0, 7);
        let mut ms: Vec<f64> = (0..20_000)
            .map(|_| delays.next().as_secs_f64() * 1000.0)
            .collect();
        ms.sort_by(f64::total_cmp);
        let median = ms[ms.len() / 2];
        let p99 = ms[ms.len() * 99 / 100];
        assert!((23.0..27.0).contains(&median), "median {median}");
        assert!((130.0..170.0).contains(&p99), "p99 {p99}");
    }
}
