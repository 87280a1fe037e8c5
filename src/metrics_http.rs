//! The metrics endpoint: an axum router serving the broker's Prometheus
//! registry in the text format (version 0.0.4) at `/metrics`. Further
//! endpoints (health, readiness) are one `.route` each in [`router`].

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))
}

/// The endpoint's routes. Every other path answers with the metrics too, as
/// the endpoint always has, so scrapers configured with another path keep
/// working.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(metrics)
        .with_state(registry)
}

/// Serves `router` on `listener` until the process ends.
pub async fn serve(listener: TcpListener, registry: Arc<Registry>) {
    if let Err(e) = axum::serve(listener, router(registry)).await {
        tracing::error!(error = %e, "metrics endpoint stopped");
    }
}

async fn metrics(State(registry): State<Arc<Registry>>) -> Response {
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

    #[tokio::test]
    async fn a_scrape_answers_the_registry_in_the_text_format() {
        let metrics = Metrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.store_puts.inc_by(3);
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, Arc::new(registry)));

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
