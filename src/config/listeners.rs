//! Listeners as Kafka names them, `PROTOCOL://HOST:PORT`: the security
//! protocol a listener speaks and the address it binds or advertises.
//!
//! An agent has one listener today: `--listener` (or `--listen`, plain text)
//! binds it and `--advertised-listener` (or `--advertise`) names it to
//! clients. SSL and SASL_SSL listeners take their certificate from
//! `--tls-cert` and `--tls-key`, which no other listener accepts.

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

/// What the listener flags come to: the protocol, and the bind and advertised
/// addresses when `--listener` / `--advertised-listener` gave them.
#[derive(Debug, PartialEq, Eq)]
pub struct ListenerChoice {
    pub protocol: SecurityProtocol,
    pub bind: Option<String>,
    pub advertised: Option<String>,
}

/// Checks `--listener` and `--advertised-listener` (each given at most once
/// for now) against each other.
pub fn choose(listeners: &[String], advertised: &[String]) -> anyhow::Result<ListenerChoice> {
    let parse_one = |flag: &str, texts: &[String]| -> anyhow::Result<Option<Listener>> {
        match texts {
            [] => Ok(None),
            [text] => Listener::parse(text)
                .map(Some)
                .with_context(|| format!("{flag} '{text}'")),
            _ => bail!(
                "{flag} is given {} times: an agent has one listener for now",
                texts.len()
            ),
        }
    };
    let listener = parse_one("--listener", listeners)?;
    let advertised = parse_one("--advertised-listener", advertised)?;
    let protocol = listener
        .as_ref()
        .map_or(SecurityProtocol::Plaintext, |l| l.protocol);
    if let Some(advertised) = &advertised {
        if advertised.protocol != protocol {
            bail!(
                "--advertised-listener {}://{} has no --listener of that protocol (the listener is {})",
                advertised.protocol.name(),
                advertised.address,
                protocol.name()
            );
        }
    }
    Ok(ListenerChoice {
        protocol,
        bind: listener.map(|l| l.address),
        advertised: advertised.map(|l| l.address),
    })
}

/// The TLS files of a listener of `protocol`: the certificate and key are
/// required on SSL and SASL_SSL. Refused on a plain-text listener rather than
/// ignored: whoever gave a certificate expects clients to be encrypted, and
/// an agent that starts in plain text would let them find out too late.
pub fn tls_files(
    protocol: SecurityProtocol,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
) -> anyhow::Result<Option<TlsFiles>> {
    if !protocol.is_tls() {
        let given: Vec<&str> = [
            (cert.is_some(), "--tls-cert"),
            (key.is_some(), "--tls-key"),
            (client_ca.is_some(), "--tls-client-ca"),
        ]
        .into_iter()
        .filter_map(|(given, flag)| given.then_some(flag))
        .collect();
        if !given.is_empty() {
            bail!(
                "{} given, but the listener is {}: TLS needs --listener SSL://HOST:PORT or SASL_SSL://HOST:PORT",
                given.join(" and "),
                protocol.name()
            );
        }
        return Ok(None);
    }
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert,
            key,
            client_ca,
        })),
        (cert, _) => bail!(
            "the {} listener needs {}: a PEM certificate (--tls-cert) and its private key (--tls-key)",
            protocol.name(),
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

    #[test]
    fn a_listener_names_its_protocol_and_address() {
        let choice = choose(
            &strings(&["SASL_PLAINTEXT://0.0.0.0:9093"]),
            &strings(&["sasl_plaintext://broker-1:9093"]),
        )
        .unwrap();
        assert_eq!(
            choice,
            ListenerChoice {
                protocol: SecurityProtocol::SaslPlaintext,
                bind: Some("0.0.0.0:9093".into()),
                advertised: Some("broker-1:9093".into()),
            }
        );
        assert_eq!(
            choose(&[], &[]).unwrap().protocol,
            SecurityProtocol::Plaintext
        );
    }

    #[test]
    fn listener_mistakes_are_explained() {
        let error =
            |l: &[&str], a: &[&str]| format!("{:#}", choose(&strings(l), &strings(a)).unwrap_err());
        assert!(error(&["HTTP://x:1"], &[]).contains("unknown security protocol"));
        assert!(error(&["x:1"], &[]).contains("PROTOCOL://HOST:PORT"));
        assert!(error(&["PLAINTEXT://a:1", "SASL_PLAINTEXT://a:2"], &[]).contains("one listener"));
        assert!(error(&["PLAINTEXT://a:1"], &["SASL_PLAINTEXT://b:1"]).contains("no --listener"));
    }

    #[test]
    fn tls_listeners_and_only_they_take_the_tls_files() {
        let path = |p: &str| Some(PathBuf::from(p));
        let files = tls_files(
            SecurityProtocol::SaslSsl,
            path("c.pem"),
            path("k.pem"),
            path("ca.pem"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(files.client_ca, path("ca.pem"));
        assert_eq!(
            tls_files(SecurityProtocol::Plaintext, None, None, None).unwrap(),
            None
        );
        let error = |protocol, cert: Option<PathBuf>, key: Option<PathBuf>, ca| {
            tls_files(protocol, cert, key, ca).unwrap_err().to_string()
        };
        assert_eq!(
            error(SecurityProtocol::Ssl, None, None, path("ca.pem")),
            "the SSL listener needs --tls-cert: a PEM certificate (--tls-cert) and its private key (--tls-key)"
        );
        assert!(error(SecurityProtocol::SaslSsl, path("c.pem"), None, None)
            .starts_with("the SASL_SSL listener needs --tls-key"));
        assert_eq!(
            error(
                SecurityProtocol::SaslPlaintext,
                path("c.pem"),
                None,
                path("ca.pem")
            ),
            "--tls-cert and --tls-client-ca given, but the listener is SASL_PLAINTEXT: TLS needs \
             --listener SSL://HOST:PORT or SASL_SSL://HOST:PORT"
        );
    }
}
