//! Listeners as Kafka names them, `PROTOCOL://HOST:PORT`: the security
//! protocol a listener speaks and the address it binds or advertises.
//!
//! An agent has one listener per security protocol it serves: each
//! `--listener` binds one, and the `--advertised-listener` of the same
//! protocol names it to clients. Without `--listener` it has one PLAINTEXT
//! listener, `--listen`, advertised as `--advertise`. SSL and SASL_SSL
//! listeners share the certificate of `--tls-cert` and `--tls-key`, which an
//! agent without either refuses.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};

use crate::tls::TlsFiles;

/// Kafka's security protocols.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    SaslPlaintext,
    Ssl,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    fn parse(text: &str) -> anyhow::Result<SecurityProtocol> {
        [
            SecurityProtocol::Plaintext,
            SecurityProtocol::SaslPlaintext,
            SecurityProtocol::Ssl,
            SecurityProtocol::SaslSsl,
        ]
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(text))
        .with_context(|| {
            format!(
                "unknown security protocol '{text}' (PLAINTEXT, SASL_PLAINTEXT, SSL or SASL_SSL)"
            )
        })
    }

    /// Whether the listener speaks TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether clients must authenticate with SASL first.
    pub fn is_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// One `PROTOCOL://HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub protocol: SecurityProtocol,
    /// `HOST:PORT`, as given.
    pub address: String,
}

impl Listener {
    pub fn parse(text: &str) -> anyhow::Result<Listener> {
        let (protocol, address) = text
            .split_once("://")
            .context("expected PROTOCOL://HOST:PORT")?;
        Ok(Listener {
            protocol: SecurityProtocol::parse(protocol)?,
            address: address.to_owned(),
        })
    }
}

/// A listener as the agent runs it: what it speaks, where it binds, and the
/// address its clients are told to use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerConfig {
    pub protocol: SecurityProtocol,
    pub bind: SocketAddr,
    pub advertised_host: String,
    pub advertised_port: u16,
}

impl ListenerConfig {
    /// `HOST:PORT` as clients are told it.
    pub fn advertised(&self) -> String {
        format!("{}:{}", self.advertised_host, self.advertised_port)
    }
}

/// The listener flags as given; [`resolve`] checks them against each other.
pub struct ListenerFlags<'a> {
    /// `--listener`, in the order given.
    pub listeners: &'a [String],
    /// `--advertised-listener`.
    pub advertised: &'a [String],
    /// `--listen`, and whether it was left at its default.
    pub listen: &'a str,
    pub listen_is_default: bool,
    /// `--advertise`.
    pub advertise: Option<&'a str>,
}

/// The agent's listeners, in the order `--listener` gave them (the first is
/// the one the catalog's `host` and `port` columns name). Without
/// `--listener`, one PLAINTEXT listener on `--listen`, advertised as
/// `--advertise`. Kafka matches advertised listeners to listeners by name;
/// StreamHouse names a listener by its protocol, so each protocol has at most
/// one listener.
pub fn resolve(flags: &ListenerFlags) -> anyhow::Result<Vec<ListenerConfig>> {
    let parse_all = |flag: &str, texts: &[String]| -> anyhow::Result<Vec<Listener>> {
        let mut parsed: Vec<Listener> = Vec::with_capacity(texts.len());
        for text in texts {
            let listener = Listener::parse(text).with_context(|| format!("{flag} '{text}'"))?;
            if let Some(earlier) = parsed.iter().find(|l| l.protocol == listener.protocol) {
                bail!(
                    "{flag} {}://{} and {text} are both {}: an agent has at most one listener \
                     per security protocol",
                    earlier.protocol.name(),
                    earlier.address,
                    listener.protocol.name()
                );
            }
            parsed.push(listener);
        }
        Ok(parsed)
    };
    let mut listeners = parse_all("--listener", flags.listeners)?;
    let mut advertised = parse_all("--advertised-listener", flags.advertised)?;
    let implicit = listeners.is_empty();
    match listeners.first() {
        Some(first) if !flags.listen_is_default => bail!(
            "give --listener {}://{} or --listen {}, not both",
            first.protocol.name(),
            first.address,
            flags.listen
        ),
        Some(_) => {}
        None => listeners.push(Listener {
            protocol: SecurityProtocol::Plaintext,
            address: flags.listen.to_owned(),
        }),
    }
    if let Some(plain) = flags.advertise {
        if !advertised.is_empty() {
            bail!("give --advertised-listener or --advertise {plain}, not both");
        }
        if listeners.len() > 1 {
            bail!(
                "--advertise {plain} names one address for {} listeners: give \
                 --advertised-listener PROTOCOL://HOST:PORT for each instead",
                listeners.len()
            );
        }
        advertised.push(Listener {
            protocol: listeners[0].protocol,
            address: plain.to_owned(),
        });
    }
    if let Some(orphan) = advertised
        .iter()
        .find(|a| !listeners.iter().any(|l| l.protocol == a.protocol))
    {
        let protocols: Vec<&str> = listeners.iter().map(|l| l.protocol.name()).collect();
        bail!(
            "--advertised-listener {}://{} has no --listener of that protocol (the listeners are {})",
            orphan.protocol.name(),
            orphan.address,
            protocols.join(", ")
        );
    }
    let (bind_flag, advertise_flag) = match (implicit, flags.advertise.is_some()) {
        (true, _) => ("--listen", "--advertise"),
        (false, true) => ("--listener", "--advertise"),
        (false, false) => ("--listener", "--advertised-listener"),
    };
    let mut resolved: Vec<ListenerConfig> = Vec::with_capacity(listeners.len());
    for listener in listeners {
        let bind: SocketAddr = listener.address.parse().with_context(|| {
            format!(
                "{bind_flag} '{}' is not an IP:PORT address",
                listener.address
            )
        })?;
        if let Some(other) = resolved.iter().find(|r| same_port(r.bind, bind)) {
            bail!(
                "the {} and {} listeners both bind port {}",
                other.protocol.name(),
                listener.protocol.name(),
                bind.port()
            );
        }
        let (advertised_host, advertised_port) =
            match advertised.iter().find(|a| a.protocol == listener.protocol) {
                Some(a) => parse_host_port(&a.address).with_context(|| {
                    format!("{advertise_flag} '{}' is not HOST:PORT", a.address)
                })?,
                None if bind.ip().is_unspecified() && implicit => bail!(
                    "--listen {bind} binds every interface: also set --advertise HOST:PORT so \
                     clients know where to connect"
                ),
                None if bind.ip().is_unspecified() => bail!(
                    "--listener {}://{bind} binds every interface: also set \
                     --advertised-listener {}://HOST:PORT so clients know where to connect",
                    listener.protocol.name(),
                    listener.protocol.name()
                ),
                // Clients are told the address it binds.
                None => (bind.ip().to_string(), bind.port()),
            };
        resolved.push(ListenerConfig {
            protocol: listener.protocol,
            bind,
            advertised_host,
            advertised_port,
        });
    }
    Ok(resolved)
}

/// Whether two listeners would take one port: the same address, or the same
/// port with one of them on every interface.
fn same_port(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn parse_host_port(text: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = text.rsplit_once(':').context("missing ':PORT'")?;
    if host.is_empty() {
        bail!("missing host");
    }
    let port = port
        .parse()
        .context("port is not a number from 1 to 65535")?;
    if port == 0 {
        bail!("port must not be 0");
    }
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// The TLS files the SSL and SASL_SSL listeners share: the certificate and
/// key are required when any listener is one. Refused when none is, rather
/// than ignored: whoever gave a certificate expects clients to be encrypted,
/// and an agent that starts in plain text would let them find out too late.
pub fn tls_files(
    protocols: &[SecurityProtocol],
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
) -> anyhow::Result<Option<TlsFiles>> {
    let Some(tls) = protocols.iter().copied().find(|p| p.is_tls()) else {
        let given: Vec<&str> = [
            (cert.is_some(), "--tls-cert"),
            (key.is_some(), "--tls-key"),
            (client_ca.is_some(), "--tls-client-ca"),
        ]
        .into_iter()
        .filter_map(|(given, flag)| given.then_some(flag))
        .collect();
        if !given.is_empty() {
            let names: Vec<&str> = protocols.iter().map(|p| p.name()).collect();
            bail!(
                "{} given, but no listener is SSL or SASL_SSL (the listeners are {}): TLS needs \
                 --listener SSL://HOST:PORT or SASL_SSL://HOST:PORT",
                given.join(" and "),
                names.join(", ")
            );
        }
        return Ok(None);
    };
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert,
            key,
            client_ca,
        })),
        (cert, _) => bail!(
            "the {} listener needs {}: a PEM certificate (--tls-cert) and its private key (--tls-key)",
            tls.name(),
            if cert.is_some() { "--tls-key" } else { "--tls-cert" },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|t| t.to_string()).collect()
    }

    fn listeners(l: &[&str], a: &[&str]) -> anyhow::Result<Vec<ListenerConfig>> {
        let (l, a) = (strings(l), strings(a));
        resolve(&ListenerFlags {
            listeners: &l,
            advertised: &a,
            listen: "127.0.0.1:9092",
            listen_is_default: true,
            advertise: None,
        })
    }

    fn listener(protocol: SecurityProtocol, bind: &str, host: &str, port: u16) -> ListenerConfig {
        ListenerConfig {
            protocol,
            bind: bind.parse().unwrap(),
            advertised_host: host.into(),
            advertised_port: port,
        }
    }

    #[test]
    fn a_listener_names_its_protocol_and_address() {
        assert_eq!(
            listeners(
                &["SASL_PLAINTEXT://0.0.0.0:9093"],
                &["sasl_plaintext://broker-1:9093"]
            )
            .unwrap(),
            vec![listener(
                SecurityProtocol::SaslPlaintext,
                "0.0.0.0:9093",
                "broker-1",
                9093
            )]
        );
        assert_eq!(
            listeners(&[], &[]).unwrap(),
            vec![listener(
                SecurityProtocol::Plaintext,
                "127.0.0.1:9092",
                "127.0.0.1",
                9092
            )]
        );
    }

    #[test]
    fn each_listener_advertises_its_own_address_or_its_bind_address() {
        let resolved = listeners(
            &[
                "SASL_SSL://0.0.0.0:9094",
                "PLAINTEXT://127.0.0.1:9092",
                "SASL_PLAINTEXT://10.0.0.5:9093",
            ],
            &["SASL_SSL://broker-1.example:9094"],
        )
        .unwrap();
        assert_eq!(
            resolved,
            vec![
                listener(
                    SecurityProtocol::SaslSsl,
                    "0.0.0.0:9094",
                    "broker-1.example",
                    9094
                ),
                listener(
                    SecurityProtocol::Plaintext,
                    "127.0.0.1:9092",
                    "127.0.0.1",
                    9092
                ),
                listener(
                    SecurityProtocol::SaslPlaintext,
                    "10.0.0.5:9093",
                    "10.0.0.5",
                    9093
                ),
            ]
        );
    }

    #[test]
    fn listener_mistakes_are_explained() {
        let error = |l: &[&str], a: &[&str]| format!("{:#}", listeners(l, a).unwrap_err());
        assert!(error(&["HTTP://x:1"], &[]).contains("unknown security protocol"));
        assert!(error(&["x:1"], &[]).contains("PROTOCOL://HOST:PORT"));
        assert_eq!(
            error(&["PLAINTEXT://127.0.0.1:1", "plaintext://127.0.0.1:2"], &[]),
            "--listener PLAINTEXT://127.0.0.1:1 and plaintext://127.0.0.1:2 are both PLAINTEXT: \
             an agent has at most one listener per security protocol"
        );
        assert!(error(
            &["PLAINTEXT://127.0.0.1:1"],
            &["SASL_SSL://b:1", "SASL_SSL://c:1"]
        )
        .starts_with("--advertised-listener SASL_SSL://b:1 and SASL_SSL://c:1 are both SASL_SSL"));
        assert_eq!(
            error(
                &["PLAINTEXT://127.0.0.1:1", "SSL://127.0.0.1:2"],
                &["SASL_PLAINTEXT://b:1"]
            ),
            "--advertised-listener SASL_PLAINTEXT://b:1 has no --listener of that protocol \
             (the listeners are PLAINTEXT, SSL)"
        );
        assert_eq!(
            error(&["PLAINTEXT://127.0.0.1:1", "SSL://0.0.0.0:2"], &[]),
            "--listener SSL://0.0.0.0:2 binds every interface: also set --advertised-listener \
             SSL://HOST:PORT so clients know where to connect"
        );
        assert_eq!(
            error(&["PLAINTEXT://127.0.0.1:9092", "SSL://0.0.0.0:9092"], &[]),
            "the PLAINTEXT and SSL listeners both bind port 9092"
        );
        assert!(error(&["SSL://localhost:1"], &[]).contains("is not an IP:PORT address"));
        assert!(error(&["SSL://127.0.0.1:1"], &["SSL://b"]).contains("is not HOST:PORT"));
    }

    #[test]
    fn listen_and_advertise_apply_to_one_listener_only() {
        let (two, none) = (
            strings(&["PLAINTEXT://127.0.0.1:1", "SSL://127.0.0.1:2"]),
            Vec::new(),
        );
        let flags = |listen_is_default, advertise| ListenerFlags {
            listeners: &two,
            advertised: &none,
            listen: "127.0.0.1:7",
            listen_is_default,
            advertise,
        };
        let error = |flags: ListenerFlags| resolve(&flags).unwrap_err().to_string();
        assert_eq!(
            error(flags(false, None)),
            "give --listener PLAINTEXT://127.0.0.1:1 or --listen 127.0.0.1:7, not both"
        );
        assert!(error(flags(true, Some("b:1"))).starts_with("--advertise b:1 names one address"));
        let one = strings(&["SASL_PLAINTEXT://0.0.0.0:9093"]);
        let resolved = resolve(&ListenerFlags {
            listeners: &one,
            ..flags(true, Some("broker-1:9093"))
        })
        .unwrap();
        assert_eq!(resolved[0].advertised(), "broker-1:9093");
    }

    #[test]
    fn tls_listeners_and_only_they_take_the_tls_files() {
        let path = |p: &str| Some(PathBuf::from(p));
        let files = tls_files(
            &[SecurityProtocol::Plaintext, SecurityProtocol::SaslSsl],
            path("c.pem"),
            path("k.pem"),
            path("ca.pem"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(files.client_ca, path("ca.pem"));
        assert_eq!(
            tls_files(&[SecurityProtocol::Plaintext], None, None, None).unwrap(),
            None
        );
        let error = |protocols: &[SecurityProtocol], cert: Option<PathBuf>, key, ca| {
            tls_files(protocols, cert, key, ca).unwrap_err().to_string()
        };
        assert_eq!(
            error(
                &[SecurityProtocol::Plaintext, SecurityProtocol::Ssl],
                None,
                None,
                path("ca.pem")
            ),
            "the SSL listener needs --tls-cert: a PEM certificate (--tls-cert) and its private key (--tls-key)"
        );
        assert!(
            error(&[SecurityProtocol::SaslSsl], path("c.pem"), None, None)
                .starts_with("the SASL_SSL listener needs --tls-key")
        );
        assert_eq!(
            error(
                &[SecurityProtocol::Plaintext, SecurityProtocol::SaslPlaintext],
                path("c.pem"),
                None,
                path("ca.pem")
            ),
            "--tls-cert and --tls-client-ca given, but no listener is SSL or SASL_SSL (the \
             listeners are PLAINTEXT, SASL_PLAINTEXT): TLS needs --listener SSL://HOST:PORT or \
             SASL_SSL://HOST:PORT"
        );
    }
}
