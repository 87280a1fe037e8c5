//! A TCP proxy that gives a local S3 server the latency of a remote one, for
//! the end-to-end benchmark (benches/e2e, `--s3-latency`).
//!
//! ```text
//! cargo run --release -p s3-latency-proxy -- \
//!     --listen 127.0.0.1:9001 --upstream 127.0.0.1:9000 --median-ms 25 --p99-ms 150
//! ```
//!
//! Each request's answer is held back before its first byte by a delay drawn
//! from a log-normal distribution with the given median and 99th percentile;
//! the rest of the answer follows unhindered. That is time to first byte, the
//! latency object stores publish and the one a PUT or a small GET is made of.
//! The proxy knows nothing of HTTP: on a connection, the first bytes the server
//! sends after the client has sent something are an answer's first. That holds
//! for HTTP/1.1 without pipelining and without `Expect: 100-continue`, which is
//! how the S3 client the broker uses talks. A request through a second
//! connection draws its own delay, as a retried or hedged request does on S3.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
}

fn usage() -> &'static str {
    "usage: s3-latency-proxy --listen HOST:PORT --upstream HOST:PORT \
     [--median-ms 25] [--p99-ms 150] [--seed N]"
}

fn parse_options() -> Result<Options, String> {
    let mut listen = None;
    let mut upstream = None;
    let mut median_ms = 25.0;
    let mut p99_ms = 150.0;
    let mut seed = 0x5eed_5eed_5eed_5eed;
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
    })
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
    eprintln!(
        "s3-latency-proxy: {} -> {}, first byte of each answer after a log-normal delay \
         (median {} ms, p99 {} ms)",
        options.listen, options.upstream, options.median_ms, options.p99_ms
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
        let upstream = options.upstream;
        tokio::spawn(async move {
            if let Err(e) = proxy(client, upstream, delays).await {
                eprintln!("s3-latency-proxy: connection ended: {e}");
            }
        });
    }
}

async fn proxy(
    client: TcpStream,
    upstream: SocketAddr,
    delays: Arc<Delays>,
) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let request_sent = Arc::new(AtomicBool::new(false));
    let requests = requests(client_read, server_write, Arc::clone(&request_sent));
    let answers = answers(server_read, client_write, request_sent, delays);
    // Either side closing ends the connection, as a direct one would.
    tokio::select! {
        result = requests => result,
        result = answers => result,
    }
}

/// Client to server, marking that an answer is owed.
async fn requests(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    request_sent: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buffer).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        request_sent.store(true, Ordering::Release);
        to.write_all(&buffer[..n]).await?;
    }
}

/// Server to client, holding back the first bytes of each answer.
async fn answers(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    request_sent: Arc<AtomicBool>,
    delays: Arc<Delays>,
) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = from.read(&mut buffer).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        if request_sent.swap(false, Ordering::AcqRel) {
            tokio::time::sleep(delays.next()).await;
        }
        to.write_all(&buffer[..n]).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
