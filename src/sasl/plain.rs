//! SASL/PLAIN (RFC 4616): one message, `authzid NUL user NUL password`,
//! checked against the user's stored SCRAM credential (so no password is
//! stored anywhere, and one password serves PLAIN and SCRAM alike).

use streamhouse_metadata::credentials::ScramCredential;

pub use streamhouse_protocol::sasl::{PlainError, PlainMessage};

use super::scram::password_matches;

/// Checks the password against the user's credentials (any one that matches
/// will do; none is an unknown user).
pub fn verify(message: &PlainMessage, credentials: &[ScramCredential]) -> Result<(), PlainError> {
    if credentials
        .iter()
        .any(|c| c.user == message.user && password_matches(c, &message.password))
    {
        Ok(())
    } else {
        Err(PlainError::InvalidCredentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::scram::new_credential;
    use streamhouse_metadata::credentials::ScramMechanism;

    #[test]
    fn the_password_is_checked_against_the_stored_credential() {
        let stored = [new_credential("alice", ScramMechanism::Sha512, "pw", 4096)];
        let right = PlainMessage::parse(b"\0alice\0pw").unwrap();
        assert_eq!(verify(&right, &stored), Ok(()));
        let wrong = PlainMessage::parse(b"\0alice\0pW").unwrap();
        assert_eq!(verify(&wrong, &stored), Err(PlainError::InvalidCredentials));
        assert_eq!(verify(&right, &[]), Err(PlainError::InvalidCredentials));
    }
}
