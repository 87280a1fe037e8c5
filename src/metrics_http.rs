//! The metrics listener: an axum router serving the broker's Prometheus
//! registry in the text format (version 0.0.4) at `/metrics`, and the health
//! (`/healthz`) and readiness (`/readyz`) probes of [`crate::health`].

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::future::BoxFuture;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::health::Readiness;

pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))
}

/// What the routes read.
#[derive(Clone)]
pub struct Endpoints {
    pub registry: Arc<Registry>,
    pub readiness: Arc<dyn Readiness>,
    /// Run before each scrape is encoded.
    pub before_scrape: Option<Arc<dyn BeforeScrape>>,
}

/// Work a scrape does before the registry is encoded: metrics read from
/// elsewhere at scrape time (consumer lag, from the catalog). It must finish
/// within a few seconds, whatever it waits for.
pub trait BeforeScrape: Send + Sync {
    fn refresh(&self) -> BoxFuture<'_, ()>;
}

/// The listener's routes. Every other path answers with the metrics too, as
/// the endpoint always has, so scrapers configured with another path keep
/// working.
pub fn router(endpoints: Endpoints) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(metrics)
        .with_state(endpoints)
}

/// Serves `router` on `listener` until the process ends.
pub async fn serve(listener: TcpListener, endpoints: Endpoints) {
    if let Err(e) = axum::serve(listener, router(endpoints)).await {
        tracing::error!(error = %e, "metrics endpoint stopped");
    }
}

/// Alive: the process answers HTTP.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready: every check passed (200), else 503; one line per check either way,
/// so an operator sees what is wrong.
async fn readyz(State(endpoints): State<Endpoints>) -> Response {
    let checks = endpoints.readiness.checks().await;
    let ready = checks.iter().all(|c| c.failure.is_none());
    let mut body = String::from(if ready { "ready\n" } else { "not ready\n" });
    for check in &checks {
        match &check.failure {
            None => body.push_str(&format!("{}: ok\n", check.name)),
            Some(why) => body.push_str(&format!("{}: {why}\n", check.name)),
        }
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body).into_response()
}

async fn metrics(
    State(Endpoints {
        registry,
        before_scrape,
        ..
    }): State<Endpoints>,
) -> Response {
    if let Some(before_scrape) = before_scrape {
        before_scrape.refresh().await;
    }
    let mut body = String::new();
    match prometheus_text::encode(&mut body, &registry) {
        Ok(()) => (
            [(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Check;
    use streamhouse_storage::Metrics;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// One HTTP/1.1 GET over a fresh connection; the whole response as text.
    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        socket.read_to_string(&mut response).await.unwrap();
        response
    }

    /// Readiness as a test sets it.
    struct Fixed(std::sync::Mutex<Vec<Check>>);

    impl Readiness for Fixed {
        fn checks(&self) -> futures::future::BoxFuture<'_, Vec<Check>> {
            let checks = self.0.lock().unwrap().clone();
            Box::pin(async move { checks })
        }
    }

    fn check(name: &'static str, failure: Option<&str>) -> Check {
        Check {
            name,
            failure: failure.map(str::to_owned),
        }
    }

    fn endpoints(registry: Registry, readiness: Arc<Fixed>) -> Endpoints {
        Endpoints {
            registry: Arc::new(registry),
            readiness,
            before_scrape: None,
        }
    }

    #[tokio::test]
    async fn health_is_200_and_readiness_follows_its_checks() {
        let readiness = Arc::new(Fixed(std::sync::Mutex::new(vec![
            check("listener", None),
            check("catalog", None),
        ])));
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(
            listener,
            endpoints(Registry::default(), Arc::clone(&readiness)),
        ));

        let health = get(addr, "/healthz").await;
        assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
        assert!(health.ends_with("\r\n\r\nok\n"), "{health}");

        let ready = get(addr, "/readyz").await;
        assert!(ready.starts_with("HTTP/1.1 200 OK\r\n"), "{ready}");
        assert!(
            ready.ends_with("\r\n\r\nready\nlistener: ok\ncatalog: ok\n"),
            "{ready}"
        );

        readiness.0.lock().unwrap()[1] = check("catalog", Some("connection refused"));
        let not_ready = get(addr, "/readyz").await;
        assert!(
            not_ready.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{not_ready}"
        );
        assert!(
            not_ready.ends_with("not ready\nlistener: ok\ncatalog: connection refused\n"),
            "{not_ready}"
        );
        // Health does not depend on readiness.
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200 OK"));
        server.abort();
    }

    #[tokio::test]
    async fn a_scrape_answers_the_registry_in_the_text_format() {
        let metrics = Metrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.store_puts.inc_by(3);
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let readiness = Arc::new(Fixed(std::sync::Mutex::new(Vec::new())));
        let server = tokio::spawn(serve(listener, endpoints(registry, readiness)));

        let response = get(addr, "/metrics").await;
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
            "{head}"
        );
        assert!(
            body.contains("\nstreamhouse_store_puts_total 3\n"),
            "{body}"
        );
        assert_eq!(body, metrics.render());
        // Counted after the first scrape: each scrape reads the values anew.
        metrics.store_puts.inc();
        let again = get(addr, "/").await;
        assert!(
            again.contains("\nstreamhouse_store_puts_total 4\n"),
            "{again}"
        );
        server.abort();
    }
}
