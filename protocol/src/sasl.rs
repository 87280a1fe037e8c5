//! The SASL messages a Kafka broker reads, as grammar only: PLAIN's one
//! message (RFC 4616) and SCRAM's client-first and client-final messages
//! (RFC 5802), with the messages Kafka gives the client when they are
//! refused. Checking them against credentials, and the exchange around
//! them, are the broker's business.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// A PLAIN message, split.
#[derive(Debug, PartialEq, Eq)]
pub struct PlainMessage {
    pub user: String,
    pub password: String,
}

/// Kafka's messages for a refused PLAIN message (PlainSaslServer's).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlainError {
    #[error("Invalid SASL/PLAIN response: expected 3 tokens, got {0}")]
    Tokens(usize),
    #[error("Authentication failed: username not specified")]
    NoUser,
    #[error("Authentication failed: password not specified")]
    NoPassword,
    #[error("Authentication failed: Client requested an authorization id that is different from username")]
    AuthorizationIdMismatch,
    #[error("Authentication failed: Invalid username or password")]
    InvalidCredentials,
}

impl PlainMessage {
    pub fn parse(message: &[u8]) -> Result<PlainMessage, PlainError> {
        let text = String::from_utf8_lossy(message);
        let tokens: Vec<&str> = text.split('\0').collect();
        let [authzid, user, password] = tokens[..] else {
            return Err(PlainError::Tokens(tokens.len()));
        };
        if user.is_empty() {
            return Err(PlainError::NoUser);
        }
        if password.is_empty() {
            return Err(PlainError::NoPassword);
        }
        if !authzid.is_empty() && authzid != user {
            return Err(PlainError::AuthorizationIdMismatch);
        }
        Ok(PlainMessage {
            user: user.to_owned(),
            password: password.to_owned(),
        })
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// Kafka's message for an unknown user or a wrong proof.
    #[error("Authentication failed: Invalid user credentials")]
    InvalidCredentials,
    #[error("Authentication failed: Client requested an authorization id that is different from username")]
    AuthorizationIdMismatch,
    #[error("Invalid client nonce in the final client message.")]
    InvalidNonce,
    #[error("Authentication failed: Invalid client final message")]
    InvalidFinalMessage,
    #[error("invalid SCRAM client first message: {0}")]
    InvalidFirstMessage(&'static str),
    #[error("delegation tokens are not supported")]
    TokenAuthentication,
}

/// A SCRAM saslname (RFC 5802 5.1): `=2C` and `=3D` stand for `,` and `=`.
fn decode_saslname(text: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => {
                return Err(ScramError::InvalidFirstMessage(
                    "bad escape in the user name",
                ))
            }
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The client's first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    pub user: String,
    pub nonce: String,
    /// The message without its GS2 header, part of what both sides sign.
    pub bare: String,
    /// The GS2 header, which the final message's channel binding repeats.
    pub gs2_header: String,
}

impl ClientFirst {
    pub fn parse(message: &[u8]) -> Result<ClientFirst, ScramError> {
        let text = std::str::from_utf8(message)
            .map_err(|_| ScramError::InvalidFirstMessage("not UTF-8"))?;
        // gs2-header: "n," (no channel binding; Kafka supports no other),
        // then an optional "a=authzid", then ",".
        let Some(rest) = text.strip_prefix("n,") else {
            return Err(ScramError::InvalidFirstMessage(
                "channel binding is not supported",
            ));
        };
        let Some((authzid, bare)) = rest.split_once(',') else {
            return Err(ScramError::InvalidFirstMessage("no GS2 header"));
        };
        let gs2_header = format!("n,{authzid},");
        let mut fields = bare.split(',');
        let user = match fields.next().and_then(|f| f.strip_prefix("n=")) {
            Some(name) if !name.is_empty() => decode_saslname(name)?,
            _ => return Err(ScramError::InvalidFirstMessage("no user name")),
        };
        let nonce = match fields.next().and_then(|f| f.strip_prefix("r=")) {
            Some(nonce) if !nonce.is_empty() => nonce.to_owned(),
            _ => return Err(ScramError::InvalidFirstMessage("no nonce")),
        };
        // Extensions follow; Kafka's only one marks delegation tokens.
        if fields.any(|f| f == "tokenauth=true") {
            return Err(ScramError::TokenAuthentication);
        }
        if !authzid.is_empty() {
            let Some(requested) = authzid.strip_prefix("a=") else {
                return Err(ScramError::InvalidFirstMessage("bad GS2 header"));
            };
            if decode_saslname(requested)? != user {
                return Err(ScramError::AuthorizationIdMismatch);
            }
        }
        Ok(ClientFirst {
            user,
            nonce,
            bare: bare.to_owned(),
            gs2_header,
        })
    }
}

/// The client's final message: `c=` channel binding, `r=` nonce, then
/// `p=` proof, last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFinal<'a> {
    /// The channel binding, decoded: the client-first GS2 header again.
    pub channel_binding: Vec<u8>,
    pub nonce: &'a str,
    /// The message up to its proof, part of what both sides sign.
    pub without_proof: &'a str,
    /// The proof, decoded.
    pub proof: Vec<u8>,
}

impl<'a> ClientFinal<'a> {
    pub fn parse(message: &'a [u8]) -> Result<ClientFinal<'a>, ScramError> {
        let text = std::str::from_utf8(message).map_err(|_| ScramError::InvalidFinalMessage)?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(ScramError::InvalidFinalMessage)?;
        let mut fields = without_proof.split(',');
        let binding = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or(ScramError::InvalidFinalMessage)?;
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or(ScramError::InvalidFinalMessage)?;
        let decode = |text: &str| {
            STANDARD
                .decode(text)
                .map_err(|_| ScramError::InvalidFinalMessage)
        };
        Ok(ClientFinal {
            channel_binding: decode(binding)?,
            nonce,
            without_proof,
            proof: decode(proof)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_messages_are_split_and_checked_as_kafka_does() {
        assert_eq!(
            PlainMessage::parse(b"\0alice\0pw"),
            Ok(PlainMessage {
                user: "alice".into(),
                password: "pw".into()
            })
        );
        assert!(PlainMessage::parse(b"alice\0alice\0pw").is_ok());
        assert_eq!(
            PlainMessage::parse(b"alice\0pw"),
            Err(PlainError::Tokens(2))
        );
        assert_eq!(PlainMessage::parse(b"\0\0pw"), Err(PlainError::NoUser));
        assert_eq!(
            PlainMessage::parse(b"\0alice\0"),
            Err(PlainError::NoPassword)
        );
        assert_eq!(
            PlainMessage::parse(b"bob\0alice\0pw"),
            Err(PlainError::AuthorizationIdMismatch)
        );
    }

    #[test]
    fn scram_first_messages_are_checked() {
        assert_eq!(
            ClientFirst::parse(b"n,a=us=3Der,n=us=3Der,r=abc")
                .unwrap()
                .user,
            "us=er"
        );
        assert_eq!(
            ClientFirst::parse(b"n,a=admin,n=user,r=abc"),
            Err(ScramError::AuthorizationIdMismatch)
        );
        assert_eq!(
            ClientFirst::parse(b"n,,n=user,r=abc,tokenauth=true"),
            Err(ScramError::TokenAuthentication)
        );
        for bad in [
            &b""[..],
            b"y,,n=user,r=abc",
            b"p=tls-unique,,n=user,r=abc",
            b"n,,n=,r=abc",
            b"n,,n=user",
            b"n,,n=u=2X,r=a",
            b"n,,\xff",
        ] {
            assert!(ClientFirst::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scram_final_messages_are_split_and_decoded() {
        let message = b"c=biws,r=abc,p=dHpi";
        let parsed = ClientFinal::parse(message).unwrap();
        assert_eq!(parsed.channel_binding, b"n,,");
        assert_eq!(parsed.nonce, "abc");
        assert_eq!(parsed.without_proof, "c=biws,r=abc");
        assert_eq!(parsed.proof, b"tzb");
        for bad in [
            &b""[..],
            b"c=biws,r=abc",
            b"r=abc,c=biws,p=dHpi",
            b"c=biws,p=dHpi",
            b"c=biws,r=abc,p=not base64!",
            b"\xff\xfe",
        ] {
            assert_eq!(
                ClientFinal::parse(bad),
                Err(ScramError::InvalidFinalMessage),
                "{bad:?}"
            );
        }
    }
}
