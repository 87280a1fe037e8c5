//! SASL/PLAIN (RFC 4616): one message, `authzid NUL user NUL password`,
//! checked against the user's stored SCRAM credential (so no password is
//! stored anywhere, and one password serves PLAIN and SCRAM alike).

use streamhouse_metadata::credentials::ScramCredential;

use super::scram::password_matches;

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

    /// Checks the password against the user's credentials (any one that
    /// matches will do; none is an unknown user).
    pub fn verify(&self, credentials: &[ScramCredential]) -> Result<(), PlainError> {
        if credentials
            .iter()
            .any(|c| c.user == self.user && password_matches(c, &self.password))
        {
            Ok(())
        } else {
            Err(PlainError::InvalidCredentials)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::scram::new_credential;
    use streamhouse_metadata::credentials::ScramMechanism;

    #[test]
    fn messages_are_split_and_checked_as_kafka_does() {
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
    fn the_password_is_checked_against_the_stored_credential() {
        let stored = [new_credential("alice", ScramMechanism::Sha512, "pw", 4096)];
        let right = PlainMessage::parse(b"\0alice\0pw").unwrap();
        assert_eq!(right.verify(&stored), Ok(()));
        let wrong = PlainMessage::parse(b"\0alice\0pW").unwrap();
        assert_eq!(wrong.verify(&stored), Err(PlainError::InvalidCredentials));
        assert_eq!(right.verify(&[]), Err(PlainError::InvalidCredentials));
    }
}
