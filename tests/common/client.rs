//! The test client: one connection (TCP, or any stream over it such as TLS)
//! that frames requests with the kafka-protocol crate's message types and
//! checks each response's correlation id and length.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a [`TestClient`] talks over.
pub trait Stream: AsyncRead + AsyncWrite + Unpin {}
impl<S: AsyncRead + AsyncWrite + Unpin> Stream for S {}

pub struct TestClient<S = TcpStream> {
    pub stream: S,
    correlation_id: i32,
    client_id: String,
}

impl TestClient {
    pub async fn connect(addr: std::net::SocketAddr) -> TestClient {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect to test broker");
        TestClient::on(stream)
    }

    /// A client on a connection the caller made (to set socket options).
    pub fn on(stream: TcpStream) -> TestClient {
        TestClient::over(stream)
    }
}

impl<S: Stream> TestClient<S> {
    /// A client on any stream, such as TLS over TCP.
    pub fn over(stream: S) -> TestClient<S> {
        TestClient {
            stream,
            correlation_id: 0,
            client_id: "streamhouse-test".into(),
        }
    }

    /// This client, sending `client_id` in its request headers from now on.
    pub fn with_client_id(mut self, client_id: &str) -> TestClient<S> {
        self.client_id = client_id.into();
        self
    }

    /// Sends one request and returns the decoded response.
    pub async fn call(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: &impl Encodable,
    ) -> ResponseKind {
        self.send(api_key, version, body).await;
        self.receive(api_key, version).await
    }

    pub async fn send(&mut self, api_key: ApiKey, version: i16, body: &impl Encodable) {
        self.correlation_id += 1;
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_string(self.client_id.clone())))
            .encode(&mut buf, api_key.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        let length = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&length.to_be_bytes());
        self.send_raw(&buf).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write request");
        // TLS sends what was written once flushed.
        self.stream.flush().await.expect("flush request");
    }

    /// Reads one response frame; `None` if the broker closed the connection.
    pub async fn receive_frame(&mut self) -> Option<Bytes> {
        let read = async {
            let length = self.stream.read_i32().await.ok()?;
            let mut body = vec![0u8; usize::try_from(length).ok()?];
            self.stream.read_exact(&mut body).await.ok()?;
            Some(Bytes::from(body))
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .expect("broker answered within 30 s")
    }

    pub async fn receive(&mut self, api_key: ApiKey, version: i16) -> ResponseKind {
        let mut frame = self.receive_frame().await.expect("a response frame");
        let header = ResponseHeader::decode(&mut frame, api_key.response_header_version(version))
            .expect("response header");
        assert_eq!(header.correlation_id, self.correlation_id, "correlation id");
        let response = ResponseKind::decode(api_key, &mut frame, version).expect("response body");
        assert_eq!(frame.remaining(), 0, "response has trailing bytes");
        response
    }

    /// Whether the broker closed the connection (reads EOF within 5 s).
    pub async fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut byte)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}
