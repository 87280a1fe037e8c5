//! One client connection: reads whole frames, hands each request to its handler
//! in arrival order, and writes the responses back in that same order.
//!
//! A handler's synchronous part (validation, queueing appends) runs in the read
//! loop, in order; what it must wait for (durable commits, fetch long-polls) runs
//! as a future, so a pipelining client keeps several requests in flight. At most
//! [`MAX_IN_FLIGHT`] responses are pending; past that the read loop stops reading.
//!
//! Timeouts (`--connections-max-idle-ms`): a connection that sent no request
//! for that long while owed no response is closed, as is one whose request
//! under way has taken that long to arrive, or whose client has not read a
//! response for that long. A connection whose ready responses hold fetch
//! memory is closed sooner, while fetches wait for that memory, once it has
//! delivered nothing for [`crate::fetch_memory::STALLED`].

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures::stream::{FuturesOrdered, StreamExt};
use futures::FutureExt;
use kafka_protocol::messages::ApiKey;
use streamhouse_clock::throttle::{Throttle, WARN_EVERY};
use streamhouse_protocol::response::Frame;
use streamhouse_protocol::{frame, request, response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::listeners::SecurityProtocol;
use crate::fetch_memory::{FetchMemory, FetchTurns};
use crate::handlers::{self, Outcome, PendingResponse};
use crate::quotas::{request_time, Mute};
use crate::sasl::SaslSession;
use crate::transport::Transport;
use crate::Broker;

/// Requests read ahead of their responses. Kafka clients pipeline at most a
/// handful (max.in.flight.requests.per.connection defaults to 5).
const MAX_IN_FLIGHT: usize = 32;

/// Numbers this agent's connections (for what lives as long as one does).
static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// Initial read buffer, and the least room made for each read. A frame's
/// declared length is not reserved up front: the buffer grows with the bytes
/// that arrive (see [`make_room`]), so a peer cannot pin memory by declaring
/// large frames and stalling.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Serves one connection accepted on the listener of `listener`: on a TLS
/// listener, its handshake first, here in the connection's own task so that
/// a slow or failed one holds up no other.
pub async fn serve(
    broker: Arc<Broker>,
    socket: TcpStream,
    peer: SocketAddr,
    listener: SecurityProtocol,
    mut stop: watch::Receiver<bool>,
) {
    let tls = match broker.tls.as_ref() {
        Some(tls) if listener.is_tls() => tls,
        _ => return serve_on(broker, socket, peer, listener, None, stop).await,
    };
    let Some(stream) = tls.accept(socket, peer, &mut stop).await else {
        return;
    };
    // On SSL, Kafka names the client by its certificate's subject.
    let principal = match listener.is_sasl() {
        true => None,
        false => crate::tls::client_principal(&stream),
    };
    serve_on(broker, stream, peer, listener, principal, stop).await
}

/// Serves a connection over `stream`. `principal` is who the transport says
/// the client is (a client certificate's subject); a SASL listener
/// authenticates the client first and names it by its SASL user instead.
async fn serve_on<T: Transport>(
    broker: Arc<Broker>,
    mut socket: T,
    peer: SocketAddr,
    listener: SecurityProtocol,
    principal: Option<String>,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = BytesMut::with_capacity(READ_BUFFER_BYTES);
    // How a SASL client authenticated (and until when).
    let sasl: Option<Arc<SaslSession>> = if listener.is_sasl() {
        match crate::sasl::authenticate(&broker, &mut socket, &mut buf, peer).await {
            Some(session) => Some(Arc::new(session)),
            None => return,
        }
    } else {
        None
    };
    // The principal's name, as quotas name users.
    let user: Arc<str> = Arc::from(match &sasl {
        Some(session) => session.user(),
        None => principal
            .as_deref()
            .unwrap_or(crate::quotas::ANONYMOUS_USER),
    });
    let (mut read_half, write_half) = socket.into_halves();
    let (pending_tx, pending_rx) = mpsc::channel::<PendingResponse>(MAX_IN_FLIGHT);
    let idle = broker.config.connections_max_idle;
    let owed = Arc::new(AtomicUsize::new(0));
    let writer = tokio::spawn(write_responses(
        write_half,
        pending_rx,
        peer,
        Arc::clone(&owed),
        idle,
        Arc::clone(&broker.fetch_memory),
    ));
    let fetch_turns = FetchTurns::new();
    let mute = Arc::new(Mute::default());
    let connection = NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed);
    let max_frame = broker.config.max_frame_bytes;
    // When the last whole request arrived (or the connection opened), and when
    // the first byte of the request under way did.
    let mut last_request = Instant::now();
    let mut request_started: Option<Instant> = None;
    'connection: loop {
        // Take every whole frame already buffered.
        loop {
            let length = match frame::check(&buf, max_frame) {
                Ok(Some(length)) => length,
                Ok(None) => break,
                Err(e) => {
                    // A hostile client can open connections faster than anyone
                    // reads the log: one line per period, with a count.
                    static BAD_FRAMES: Throttle = Throttle::new(WARN_EVERY);
                    if let Some(suppressed) = BAD_FRAMES.allow() {
                        tracing::warn!(%peer, error = %e, suppressed, "closing connection: bad frame");
                    }
                    break 'connection;
                }
            };
            // A throttled client's next request waits out its throttle.
            mute.wait().await;
            let body = buf
                .split_to(frame::LENGTH_PREFIX_BYTES + length)
                .freeze()
                .slice(frame::LENGTH_PREFIX_BYTES..);
            // Only timed when some client is under a request-time quota.
            let decoding = broker.quotas.meters_requests().then(Instant::now);
            let pending = match request::decode(body) {
                // Past its session's lifetime a client may only
                // re-authenticate; anything else closes the connection, as
                // on Kafka (the responses already owed go first).
                Ok(request)
                    if sasl.as_ref().is_some_and(|s| s.expired())
                        && !matches!(
                            request.api_key,
                            ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
                        ) =>
                {
                    tracing::info!(%peer, user = %user, api = ?request.api_key, "closing connection: SASL session expired without re-authentication");
                    PendingResponse::ready(Outcome::Close)
                }
                Ok(request) => {
                    let span = tracing::debug_span!(
                        "request",
                        api = ?request.api_key,
                        version = request.version,
                        correlation_id = request.correlation_id(),
                        client_id = request.client_id(),
                    );
                    let meter = decoding.and_then(|decoding| {
                        broker
                            .quotas
                            .request_meter(&request, &user, &mute, decoding.elapsed())
                    });
                    let dispatching = handlers::dispatch(
                        &broker,
                        request,
                        handlers::Session {
                            peer,
                            listener,
                            user: &user,
                            fetch_turns: &fetch_turns,
                            mute: &mute,
                            sasl: sasl.as_ref(),
                            connection,
                        },
                        meter.clone(),
                    );
                    request_time::timed(meter.as_ref(), dispatching.instrument(span)).await
                }
                Err(request::RequestError::UnsupportedVersion {
                    api_key: kafka_protocol::messages::ApiKey::ApiVersions,
                    correlation_id,
                    ..
                }) => {
                    let frame = response::unsupported_api_versions(correlation_id);
                    PendingResponse::ready(match frame {
                        Ok(frame) => Outcome::Respond(frame.into(), None),
                        Err(_) => Outcome::Close,
                    })
                }
                Err(e) => {
                    // Kafka closes the connection on requests it cannot parse; the
                    // responses already owed are still delivered first.
                    static BAD_REQUESTS: Throttle = Throttle::new(WARN_EVERY);
                    if let Some(suppressed) = BAD_REQUESTS.allow() {
                        tracing::warn!(%peer, error = %e, suppressed, "closing connection: bad request");
                    }
                    PendingResponse::ready(Outcome::Close)
                }
            };
            last_request = Instant::now();
            request_started = None;
            owed.fetch_add(1, Ordering::Relaxed);
            if pending_tx.send(pending).await.is_err() {
                break 'connection;
            }
        }
        if !buf.is_empty() && request_started.is_none() {
            request_started = Some(Instant::now());
        }
        // Kafka closes a connection idle for connections.max.idle.ms. A request
        // trickled in a byte at a time keeps a socket busy without ever being
        // idle, so one request's bytes get the same time in all, counted from
        // its first byte: generous for any real client (100 MiB in ten
        // minutes is 170 KiB/s), yet it bounds how long a peer holds a
        // connection slot and its partial frame.
        let deadline = request_started.unwrap_or(last_request) + idle;
        tokio::select! {
            read = read_more(&mut read_half, &mut buf, max_frame) => match read {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "read failed");
                    break;
                }
            },
            _ = tokio::time::sleep_until(deadline) => {
                if request_started.is_some() {
                    tracing::debug!(%peer, "closing connection: request not received in time");
                    break;
                }
                // A long-polling fetch or a producer awaiting its ack is not
                // idle: the client waits on us.
                if owed.load(Ordering::Relaxed) > 0 {
                    last_request = Instant::now();
                    continue;
                }
                tracing::debug!(%peer, "closing idle connection");
                break;
            }
            _ = stop.changed() => break,
            // The writer stopped (closed by a bad request, or the peer is gone).
            _ = pending_tx.closed() => break,
        }
    }
    drop(pending_tx);
    let _ = writer.await;
    crate::share::connection_closed(&broker, connection).await;
}

/// Reads what the peer has sent into `buf`, after making room for it; `Ok(0)`
/// at the end of the stream. Cancel safe: nothing is lost if the read is
/// dropped before it completes.
pub(crate) async fn read_more<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    max_frame: usize,
) -> std::io::Result<usize> {
    make_room(buf, max_frame);
    reader.read_buf(buf).await
}

/// Makes room in `buf` for the next read: a chunk, or as much as is buffered
/// already, whichever is larger, but never past the end of the frame under
/// way. So the buffer grows geometrically with the bytes that actually
/// arrived (a large frame costs a handful of reallocations), and a peer that
/// declares a large frame and stalls holds at most about twice what it sent.
fn make_room(buf: &mut BytesMut, max_frame: usize) {
    let spare = buf.capacity() - buf.len();
    let wanted = match frame::declared_length(buf, max_frame) {
        Ok(Some(length)) => {
            let missing = (frame::LENGTH_PREFIX_BYTES + length).saturating_sub(buf.len());
            // Past its end, the next frame's prefix: one chunk reads it.
            if missing == 0 {
                READ_BUFFER_BYTES
            } else {
                missing.min(buf.len().max(READ_BUFFER_BYTES))
            }
        }
        // No whole prefix yet, or a bad one that the caller closes on.
        _ => READ_BUFFER_BYTES,
    };
    if spare == 0 || spare < wanted.min(READ_BUFFER_BYTES) {
        buf.reserve(wanted);
    }
}

/// Writes each response once it is ready, in request order; `owed` counts the
/// responses not yet written. A client that takes longer than `idle` to read
/// one response is not reading: its connection is closed rather than left to
/// hold responses in memory. So is one whose ready responses hold fetch
/// memory while it delivers nothing and fetches wait for memory (see
/// [`crate::fetch_memory`]).
async fn write_responses<W: AsyncWrite + Unpin>(
    mut socket: W,
    mut incoming: mpsc::Receiver<PendingResponse>,
    peer: SocketAddr,
    owed: Arc<AtomicUsize>,
    idle: Duration,
    memory: Arc<FetchMemory>,
) {
    let holding = Arc::new(Holding::default());
    let mut in_flight = FuturesOrdered::new();
    let mut reading = true;
    // When the client last took a whole response (or the connection opened).
    let mut delivered = Instant::now();
    loop {
        tokio::select! {
            next = incoming.recv(), if reading => match next {
                Some(pending) => {
                    // Counted when ready, not when its turn comes: a response
                    // behind one still waiting (a long poll) holds its memory
                    // too.
                    let holding = Arc::clone(&holding);
                    in_flight.push_back(pending.into_future().inspect(move |outcome| {
                        if let Outcome::Respond(_, Some(hold)) = outcome {
                            holding.add(hold.bytes());
                        }
                    }));
                }
                None => reading = false,
            },
            Some(outcome) = in_flight.next(), if !in_flight.is_empty() => match outcome {
                Outcome::Respond(frame, hold) => {
                    let written = write_frame(&mut socket, frame, idle, &memory, &holding).await;
                    if let Some(hold) = hold {
                        holding.sub(hold.bytes());
                    }
                    match written {
                        Ok(()) => {}
                        Err(Unwritten::Failed(e)) => {
                            tracing::debug!(%peer, error = %e, "write failed");
                            return;
                        }
                        Err(Unwritten::NotRead) => {
                            tracing::debug!(%peer, "closing connection: response not read in time");
                            return;
                        }
                        Err(Unwritten::Reclaimed) => {
                            closed_for_memory(&memory, peer);
                            return;
                        }
                    }
                    delivered = Instant::now();
                    owed.fetch_sub(1, Ordering::Relaxed);
                }
                Outcome::NoResponse => {
                    owed.fetch_sub(1, Ordering::Relaxed);
                }
                Outcome::Close => {
                    let _ = socket.shutdown().await;
                    return;
                }
            },
            () = reclaim(&memory, &holding, delivered), if !in_flight.is_empty() => {
                closed_for_memory(&memory, peer);
                return;
            }
            else => break,
        }
    }
    let _ = socket.shutdown().await;
}

fn closed_for_memory(memory: &FetchMemory, peer: SocketAddr) {
    memory.reclaimed();
    tracing::debug!(%peer, "closing connection: its responses hold fetch memory others wait for, and it does not read them");
}

/// Why a frame was not written.
enum Unwritten {
    Failed(std::io::Error),
    /// Not taken within the idle timeout.
    NotRead,
    /// Its connection held fetch memory, took nothing for
    /// [`crate::fetch_memory::STALLED`], and fetches waited for memory.
    Reclaimed,
}

/// Writes one frame; see [`write_responses`] for when it gives up.
///
/// A fetch response's records are slices of cached objects (see
/// [`response::encode_fetch`]), written with vectored writes. A client that
/// has not taken the whole frame [`COMPACT_AFTER`] after it began, plus the
/// time the frame takes at [`SLOWEST_READ_BYTES_PER_SEC`], gets the rest
/// copied into a buffer of its own, so a slow reader holds its response's
/// bytes (which the fetch memory counts) rather than whole objects the cache
/// has let go.
async fn write_frame<W: AsyncWrite + Unpin>(
    socket: &mut W,
    frame: Frame,
    idle: Duration,
    memory: &FetchMemory,
    holding: &Holding,
) -> Result<(), Unwritten> {
    let deadline = Instant::now() + idle;
    let mut progress = Instant::now();
    let read_time = Duration::from_secs_f64(frame.len() as f64 / SLOWEST_READ_BYTES_PER_SEC);
    let compact_at = progress + COMPACT_AFTER + read_time;
    let mut segments = frame.into_segments();
    // The first segment not wholly written; those before it are empty.
    let mut next = 0;
    let mut compacted = segments.len() <= 1;
    while next < segments.len() {
        let slices: Vec<IoSlice<'_>> = segments[next..]
            .iter()
            .take(MAX_IO_SLICES)
            .map(|segment| IoSlice::new(segment))
            .collect();
        let wrote = tokio::select! {
            // Cancel safe: a write that has not completed wrote nothing.
            wrote = socket.write_vectored(&slices) => wrote,
            _ = tokio::time::sleep_until(compact_at), if !compacted => {
                drop(slices);
                let rest = concatenate(&segments[next..]);
                segments = vec![rest];
                next = 0;
                compacted = true;
                continue;
            }
            _ = tokio::time::sleep_until(deadline) => return Err(Unwritten::NotRead),
            () = reclaim(memory, holding, progress) => return Err(Unwritten::Reclaimed),
        };
        match wrote {
            Ok(0) => return Err(Unwritten::Failed(std::io::ErrorKind::WriteZero.into())),
            Ok(mut n) => {
                progress = Instant::now();
                while n > 0 {
                    let segment = &mut segments[next];
                    let taken = n.min(segment.len());
                    segment.advance(taken);
                    n -= taken;
                    if segment.is_empty() {
                        next += 1;
                    }
                }
            }
            Err(e) => return Err(Unwritten::Failed(e)),
        }
    }
    // TLS holds what was written until flushed. TCP's flush does nothing and
    // is ready at once: no timers are set up for it.
    if let Some(flushed) = socket.flush().now_or_never() {
        return flushed.map_err(Unwritten::Failed);
    }
    tokio::select! {
        flushed = socket.flush() => flushed.map_err(Unwritten::Failed),
        _ = tokio::time::sleep_until(deadline) => Err(Unwritten::NotRead),
        () = reclaim(memory, holding, progress) => Err(Unwritten::Reclaimed),
    }
}

/// Segments one vectored write takes at most (Linux's IOV_MAX is 1024).
const MAX_IO_SLICES: usize = 256;

/// How long a frame's records may stay slices of cached objects, beyond the
/// time they take at [`SLOWEST_READ_BYTES_PER_SEC`]; see [`write_frame`].
const COMPACT_AFTER: Duration = Duration::from_millis(200);

/// The reading speed below which a client's response is copied out of the
/// cached objects before it has taken it all.
const SLOWEST_READ_BYTES_PER_SEC: f64 = 10.0 * 1024.0 * 1024.0;

fn concatenate(segments: &[Bytes]) -> Bytes {
    let mut out = BytesMut::with_capacity(segments.iter().map(Bytes::len).sum());
    for segment in segments {
        out.extend_from_slice(segment);
    }
    out.freeze()
}

/// Resolves when a connection that has delivered nothing since `since` is to
/// give its fetch memory back: once it holds some, and then as
/// [`FetchMemory::reclaim`] says, counting from when it began holding if that
/// is later.
async fn reclaim(memory: &FetchMemory, holding: &Holding, since: Instant) {
    let holding_since = holding.since().await;
    memory.reclaim(since.max(holding_since)).await;
}

/// Bytes of fetch memory held by a connection's responses that are ready and
/// not yet written, and since when it has held any.
#[derive(Default)]
struct Holding {
    state: Mutex<(usize, Option<Instant>)>,
    /// Signalled when it begins holding.
    began: Notify,
}

impl Holding {
    fn add(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let mut state = self.state.lock().unwrap();
        state.0 += bytes;
        if state.1.is_none() {
            state.1 = Some(Instant::now());
            self.began.notify_waiters();
        }
    }

    fn sub(&self, bytes: usize) {
        let mut state = self.state.lock().unwrap();
        state.0 -= bytes;
        if state.0 == 0 {
            state.1 = None;
        }
    }

    /// Since when it has held memory, once it holds some.
    async fn since(&self) -> Instant {
        loop {
            let began = self.began.notified();
            tokio::pin!(began);
            // Registered before the check, so holding that begins in between
            // still wakes us.
            began.as_mut().enable();
            let since = self.state.lock().unwrap().1;
            if let Some(since) = since {
                return since;
            }
            began.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    const MIB: usize = 1024 * 1024;

    async fn read_until(socket: &mut tokio::io::DuplexStream, buf: &mut BytesMut, len: usize) {
        while buf.len() < len {
            assert!(read_more(socket, buf, 100 * MIB).await.unwrap() > 0);
        }
    }

    /// A peer that declares a large frame and sends only its start costs about
    /// what it sent, not what it declared.
    #[tokio::test]
    async fn a_stalled_large_frame_holds_only_the_bytes_it_sent() {
        let (mut peer, mut socket) = tokio::io::duplex(64 * 1024);
        let mut buf = BytesMut::new();
        let declared = 90 * MIB;
        peer.write_all(&(declared as i32).to_be_bytes())
            .await
            .unwrap();
        read_until(&mut socket, &mut buf, 4).await;
        for sent in [1004, 2004] {
            peer.write_all(&[7; 1000]).await.unwrap();
            read_until(&mut socket, &mut buf, sent).await;
        }
        assert_eq!(buf.len(), 2004);
        assert!(
            buf.capacity() <= MIB,
            "{} bytes reserved for 2004 received",
            buf.capacity()
        );
    }

    /// The buffer still grows to hold a whole large frame sent in pieces.
    #[tokio::test]
    async fn a_large_frame_arriving_in_pieces_is_read_whole() {
        let (mut peer, mut socket) = tokio::io::duplex(64 * 1024);
        let body: Vec<u8> = (0..5 * MIB).map(|i| (i % 251) as u8).collect();
        let sent = body.clone();
        let sender = tokio::spawn(async move {
            peer.write_all(&(sent.len() as i32).to_be_bytes())
                .await
                .unwrap();
            for piece in sent.chunks(10_000) {
                peer.write_all(piece).await.unwrap();
            }
            peer
        });
        let mut buf = BytesMut::new();
        let length = loop {
            if let Some(length) = frame::check(&buf, 100 * MIB).unwrap() {
                break length;
            }
            assert!(read_more(&mut socket, &mut buf, 100 * MIB).await.unwrap() > 0);
            // Room for at most what arrived again, plus one chunk.
            assert!(
                buf.capacity() <= 2 * buf.len() + MIB,
                "{} for {}",
                buf.capacity(),
                buf.len()
            );
        };
        assert_eq!(length, body.len());
        assert_eq!(&buf[frame::LENGTH_PREFIX_BYTES..], &body[..]);
        drop(sender.await.unwrap());
    }
    /// A frame of many segments arrives whole and in order, also when its
    /// reader stops long enough for the rest to be copied out of them.
    #[tokio::test]
    async fn a_segmented_frame_arrives_whole_across_a_pause() {
        let segments: Vec<Bytes> = (0..1000u32)
            .map(|i| Bytes::from(vec![(i % 251) as u8; 1 + (i as usize * 37) % 3000]))
            .collect();
        let expected: Vec<u8> = segments.iter().flat_map(|s| s.to_vec()).collect();
        let frame: Frame = segments.into_iter().collect();
        let (mut client, mut socket) = tokio::io::duplex(64 * 1024);
        let reader = tokio::spawn(async move {
            let mut received = BytesMut::new();
            let mut paused = false;
            while received.len() < expected.len() {
                assert!(
                    read_more(&mut client, &mut received, 100 * MIB)
                        .await
                        .unwrap()
                        > 0
                );
                if !paused && received.len() > expected.len() / 3 {
                    paused = true;
                    let read_time = expected.len() as f64 / SLOWEST_READ_BYTES_PER_SEC;
                    tokio::time::sleep(COMPACT_AFTER * 2 + Duration::from_secs_f64(read_time))
                        .await;
                }
            }
            assert_eq!(&received[..], &expected[..]);
        });
        let memory = FetchMemory::new(MIB);
        let holding = Holding::default();
        let written = write_frame(
            &mut socket,
            frame,
            Duration::from_secs(10),
            &memory,
            &holding,
        )
        .await;
        assert!(written.is_ok());
        reader.await.unwrap();
    }
}
