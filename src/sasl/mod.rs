//! SASL authentication of client connections on a SASL listener: the
//! mechanisms (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), one connection's
//! exchange, the users file that creates credentials at start, the
//! connection's phase before it is authenticated ([`authenticate`]), and
//! re-authentication on the authenticated connection ([`reauth`]).
//!
//! Credentials live in the catalog as SCRAM credentials, so every agent
//! authenticates the same users; PLAIN is checked against them too.

pub mod plain;
pub mod reauth;
pub mod scram;
mod session;
pub mod users;

pub use reauth::SaslSession;
pub use session::authenticate;

use streamhouse_metadata::credentials::ScramMechanism;
use streamhouse_metadata::Catalog;

use plain::{PlainError, PlainMessage};
use scram::{ClientFirst, ScramError, ServerFirst};

/// The mechanisms a SASL listener offers, as SaslHandshake lists them.
pub const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Scram(ScramMechanism),
}

impl Mechanism {
    pub fn from_name(name: &str) -> Option<Mechanism> {
        if name == "PLAIN" {
            return Some(Mechanism::Plain);
        }
        ScramMechanism::from_name(name).map(Mechanism::Scram)
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(scram) => scram.name(),
        }
    }
}

/// What a client's token led to.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this challenge; the exchange goes on.
    Continue(Vec<u8>),
    /// The client is `user`; send `response` (possibly empty) last.
    Authenticated { user: String, response: Vec<u8> },
}

/// A refused exchange, with the message Kafka gives the client.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub message: String,
}

/// One connection's exchange of one mechanism.
pub struct Exchange {
    mechanism: Mechanism,
    /// SCRAM, after the server's first message.
    scram: Option<ServerFirst>,
}

impl Exchange {
    pub fn new(mechanism: Mechanism) -> Exchange {
        Exchange {
            mechanism,
            scram: None,
        }
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Answers the client's next token.
    pub async fn step(&mut self, catalog: &dyn Catalog, token: &[u8]) -> Result<Step, Refused> {
        match self.mechanism {
            Mechanism::Plain => self.plain(catalog, token).await,
            Mechanism::Scram(scram) => match self.scram.take() {
                None => self.scram_first(catalog, scram, token).await,
                Some(server_first) => match server_first.finish(token) {
                    Ok(response) => Ok(Step::Authenticated {
                        user: server_first.user().to_owned(),
                        response,
                    }),
                    Err(error) => Err(self.refused_scram(error)),
                },
            },
        }
    }

    async fn plain(&self, catalog: &dyn Catalog, token: &[u8]) -> Result<Step, Refused> {
        let refused = |error: PlainError| match error {
            // Kafka's PlainSaslServer throws a plain SaslException here, which
            // the authenticator reports with its generic message.
            PlainError::Tokens(_) => self.generic_refusal(),
            other => Refused {
                message: other.to_string(),
            },
        };
        let message = PlainMessage::parse(token).map_err(refused)?;
        let mut credentials = Vec::new();
        for mechanism in ScramMechanism::ALL {
            match catalog.scram_credential(&message.user, mechanism).await {
                Ok(Some(credential)) => credentials.push(credential),
                Ok(None) => {}
                Err(e) => return Err(catalog_failure(&e)),
            }
        }
        plain::verify(&message, &credentials).map_err(refused)?;
        Ok(Step::Authenticated {
            user: message.user,
            response: Vec::new(),
        })
    }

    async fn scram_first(
        &mut self,
        catalog: &dyn Catalog,
        mechanism: ScramMechanism,
        token: &[u8],
    ) -> Result<Step, Refused> {
        let first = ClientFirst::parse(token).map_err(|e| self.refused_scram(e))?;
        let credential = match catalog.scram_credential(&first.user, mechanism).await {
            Ok(Some(credential)) => credential,
            Ok(None) => return Err(self.refused_scram(ScramError::InvalidCredentials)),
            Err(e) => return Err(catalog_failure(&e)),
        };
        let server_first = ServerFirst::new(first, credential, &ServerFirst::random_nonce());
        let challenge = server_first.message().to_vec();
        self.scram = Some(server_first);
        Ok(Step::Continue(challenge))
    }

    fn refused_scram(&self, error: ScramError) -> Refused {
        tracing::debug!(%error, mechanism = self.mechanism.name(), "SCRAM exchange refused");
        match error {
            // Kafka's SaslAuthenticationExceptions reach the client as they are.
            ScramError::InvalidCredentials | ScramError::AuthorizationIdMismatch => Refused {
                message: error.to_string(),
            },
            _ => self.generic_refusal(),
        }
    }

    /// Kafka's message for any other failed exchange.
    fn generic_refusal(&self) -> Refused {
        Refused {
            message: format!(
                "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
                self.mechanism.name()
            ),
        }
    }
}

fn catalog_failure(error: &streamhouse_metadata::CatalogError) -> Refused {
    tracing::warn!(%error, "cannot read SCRAM credentials");
    Refused {
        message: "Authentication failed: Credentials could not be obtained".to_owned(),
    }
}
