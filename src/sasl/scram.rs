//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as a Kafka broker
//! runs them: credentials derived from a password, and the server's side of
//! the two-message exchange, checked against a stored credential.
//!
//! The exchange is pure: [`ClientFirst::parse`] (the messages' grammar is
//! the protocol crate's, `streamhouse_protocol::sasl`) reads the client's first
//! message, the caller looks up the user's credential, [`ServerFirst::new`]
//! answers with the salt, the iteration count and the combined nonce, and
//! [`ServerFirst::finish`] checks the client's proof and returns the server's
//! signature.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256, Sha512};
use streamhouse_metadata::credentials::{ScramCredential, ScramMechanism};
pub use streamhouse_protocol::sasl::{ClientFinal, ClientFirst, ScramError};

/// Kafka's default and least iteration count for SCRAM credentials.
pub const DEFAULT_ITERATIONS: i32 = 4096;
/// Kafka refuses more iterations than this.
pub const MAX_ITERATIONS: i32 = 16384;
/// Bytes of random salt in a credential derived here.
const SALT_BYTES: usize = 32;

fn digest(mechanism: ScramMechanism, parts: &[&[u8]]) -> Vec<u8> {
    match mechanism {
        ScramMechanism::Sha256 => {
            let mut hash = Sha256::new();
            parts.iter().for_each(|p| hash.update(p));
            hash.finalize().to_vec()
        }
        ScramMechanism::Sha512 => {
            let mut hash = Sha512::new();
            parts.iter().for_each(|p| hash.update(p));
            hash.finalize().to_vec()
        }
    }
}

/// HMAC (RFC 2104) over the hash of `mechanism`.
fn hmac(mechanism: ScramMechanism, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let block = match mechanism {
        ScramMechanism::Sha256 => 64,
        ScramMechanism::Sha512 => 128,
    };
    let mut padded = if key.len() > block {
        digest(mechanism, &[key])
    } else {
        key.to_vec()
    };
    padded.resize(block, 0);
    let inner_pad: Vec<u8> = padded.iter().map(|b| b ^ 0x36).collect();
    let outer_pad: Vec<u8> = padded.iter().map(|b| b ^ 0x5c).collect();
    let mut inner_parts = Vec::with_capacity(parts.len() + 1);
    inner_parts.push(&inner_pad[..]);
    inner_parts.extend_from_slice(parts);
    let inner = digest(mechanism, &inner_parts);
    digest(mechanism, &[&outer_pad, &inner])
}

/// RFC 5802's Hi(): PBKDF2 with HMAC, one block.
fn salted_password(
    mechanism: ScramMechanism,
    password: &[u8],
    salt: &[u8],
    iterations: i32,
) -> Vec<u8> {
    let mut block = hmac(mechanism, password, &[salt, &1u32.to_be_bytes()]);
    let mut result = block.clone();
    for _ in 1..iterations {
        block = hmac(mechanism, password, &[&block]);
        result.iter_mut().zip(&block).for_each(|(r, b)| *r ^= b);
    }
    result
}

/// The credential of `password` with this salt and iteration count.
pub fn credential_with_salt(
    user: &str,
    mechanism: ScramMechanism,
    password: &str,
    salt: Vec<u8>,
    iterations: i32,
) -> ScramCredential {
    let salted = salted_password(mechanism, password.as_bytes(), &salt, iterations);
    credential_from_salted_password(user, mechanism, salt, iterations, &salted)
}

/// The credential of a password already salted by the client
/// (AlterUserScramCredentials sends SaltedPassword, never the password).
pub fn credential_from_salted_password(
    user: &str,
    mechanism: ScramMechanism,
    salt: Vec<u8>,
    iterations: i32,
    salted_password: &[u8],
) -> ScramCredential {
    let client_key = hmac(mechanism, salted_password, &[b"Client Key"]);
    ScramCredential {
        user: user.to_owned(),
        mechanism,
        stored_key: digest(mechanism, &[&client_key]),
        server_key: hmac(mechanism, salted_password, &[b"Server Key"]),
        salt,
        iterations,
    }
}

/// A client's own SaltedPassword (RFC 5802 Hi()), for tests that play the
/// client's part.
pub fn client_salted_password(
    mechanism: ScramMechanism,
    password: &str,
    salt: &[u8],
    iterations: i32,
) -> Vec<u8> {
    salted_password(mechanism, password.as_bytes(), salt, iterations)
}

/// A client's ClientProof of `auth_message` (RFC 5802), for tests that play
/// the client's part.
pub fn client_proof(
    mechanism: ScramMechanism,
    salted_password: &[u8],
    auth_message: &[u8],
) -> Vec<u8> {
    let client_key = hmac(mechanism, salted_password, &[b"Client Key"]);
    let stored_key = digest(mechanism, &[&client_key]);
    let signature = hmac(mechanism, &stored_key, &[auth_message]);
    client_key
        .iter()
        .zip(&signature)
        .map(|(k, s)| k ^ s)
        .collect()
}

/// A credential of `password` with a fresh random salt.
pub fn new_credential(
    user: &str,
    mechanism: ScramMechanism,
    password: &str,
    iterations: i32,
) -> ScramCredential {
    credential_with_salt(
        user,
        mechanism,
        password,
        random_bytes(SALT_BYTES),
        iterations,
    )
}

/// Whether `password` is the one `credential` was derived from.
pub fn password_matches(credential: &ScramCredential, password: &str) -> bool {
    let derived = credential_with_salt(
        &credential.user,
        credential.mechanism,
        password,
        credential.salt.clone(),
        credential.iterations,
    );
    constant_time_eq(&derived.stored_key, &credential.stored_key)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Random bytes from the operating system (by way of v4 UUIDs, whose 122
/// random bits come from it).
pub fn random_bytes(count: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(count + 16);
    while bytes.len() < count {
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    bytes.truncate(count);
    bytes
}

/// The server's first message, sent, and what the final exchange needs.
#[derive(Debug, Clone)]
pub struct ServerFirst {
    client_first: ClientFirst,
    credential: ScramCredential,
    /// Client nonce followed by the server's.
    nonce: String,
    message: String,
}

impl ServerFirst {
    /// Answers `client_first` for the user's `credential`, adding
    /// `server_nonce` (printable, without commas) to the client's nonce.
    pub fn new(
        client_first: ClientFirst,
        credential: ScramCredential,
        server_nonce: &str,
    ) -> ServerFirst {
        let nonce = format!("{}{server_nonce}", client_first.nonce);
        let message = format!(
            "r={nonce},s={},i={}",
            STANDARD.encode(&credential.salt),
            credential.iterations
        );
        ServerFirst {
            client_first,
            credential,
            nonce,
            message,
        }
    }

    /// A fresh server nonce.
    pub fn random_nonce() -> String {
        STANDARD.encode(random_bytes(24))
    }

    pub fn message(&self) -> &[u8] {
        self.message.as_bytes()
    }

    /// The user the client claims to be.
    pub fn user(&self) -> &str {
        &self.client_first.user
    }

    /// Checks the client's final message; the server's final message if the
    /// proof is right.
    pub fn finish(&self, client_final: &[u8]) -> Result<Vec<u8>, ScramError> {
        let ClientFinal {
            channel_binding,
            nonce,
            without_proof,
            proof,
        } = ClientFinal::parse(client_final)?;
        // Kafka accepts a nonce that ends with the combined one: librdkafka
        // repeats its own nonce in front of it.
        if !nonce.ends_with(&self.nonce) {
            return Err(ScramError::InvalidNonce);
        }
        if channel_binding != self.client_first.gs2_header.as_bytes() {
            return Err(ScramError::InvalidFinalMessage);
        }
        let mechanism = self.credential.mechanism;
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first.bare, self.message
        );
        let client_signature = hmac(
            mechanism,
            &self.credential.stored_key,
            &[auth_message.as_bytes()],
        );
        if proof.len() != client_signature.len() {
            return Err(ScramError::InvalidCredentials);
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        if !constant_time_eq(
            &digest(mechanism, &[&client_key]),
            &self.credential.stored_key,
        ) {
            return Err(ScramError::InvalidCredentials);
        }
        let server_signature = hmac(
            mechanism,
            &self.credential.server_key,
            &[auth_message.as_bytes()],
        );
        Ok(format!("v={}", STANDARD.encode(server_signature)).into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's client final message (user "user", password "pencil").
    const RFC_CLIENT_FINAL: &[u8] = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";

    /// The server of RFC 7677's example after its first message, holding the
    /// credential of `password` with the RFC's salt and nonce.
    fn rfc_7677_server(password: &str) -> ServerFirst {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let credential = credential_with_salt("user", ScramMechanism::Sha256, password, salt, 4096);
        let first = ClientFirst::parse(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(first.user, "user");
        ServerFirst::new(first, credential, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    }

    /// RFC 7677's example exchange: user "user", password "pencil".
    #[test]
    fn the_rfc_7677_exchange_is_answered_as_in_the_rfc() {
        let server = rfc_7677_server("pencil");
        assert_eq!(
            std::str::from_utf8(server.message()).unwrap(),
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let last = server.finish(RFC_CLIENT_FINAL).unwrap();
        assert_eq!(last, b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    }

    #[test]
    fn a_wrong_proof_or_nonce_is_refused() {
        let server = rfc_7677_server("not-pencil");
        assert_eq!(
            server.finish(RFC_CLIENT_FINAL),
            Err(ScramError::InvalidCredentials)
        );
        assert_eq!(
            server.finish(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
            ),
            Err(ScramError::InvalidNonce)
        );
        assert_eq!(
            server.finish(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0x,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
            Err(ScramError::InvalidNonce)
        );
        for garbage in [
            &b""[..],
            b"p=",
            b"c=biws",
            b"\xff\xfe",
            b"c=biws,r=x,p=not base64!",
        ] {
            assert!(server.finish(garbage).is_err());
        }
    }

    /// Bytes from a fixed xorshift sequence: the same inputs on every run.
    fn noise(seed: &mut u64, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                *seed as u8
            })
            .collect()
    }

    /// Truncated, mutated and random messages are refused, never a panic.
    #[test]
    fn damaged_messages_are_refused_without_panicking() {
        let first: &[u8] = b"n,a=user,n=us=2Cer,r=rOprNGfwEbeRWgbNEkqO,ext=1";
        let last = RFC_CLIENT_FINAL;
        let server = rfc_7677_server("pencil");
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for message in [first, last] {
            for cut in 0..message.len() {
                inputs.push(message[..cut].to_vec());
            }
            for _ in 0..500 {
                let mut mutated = message.to_vec();
                let at = noise(&mut seed, 1)[0] as usize % mutated.len();
                mutated[at] = noise(&mut seed, 1)[0];
                inputs.push(mutated);
            }
        }
        for len in [1, 3, 17, 64, 300] {
            for _ in 0..100 {
                inputs.push(noise(&mut seed, len));
            }
        }
        for input in &inputs {
            let _ = ClientFirst::parse(input);
            let _ = server.finish(input);
            let _ = crate::sasl::plain::PlainMessage::parse(input);
        }
        assert!(server.finish(&last[..last.len() - 1]).is_err());
    }

    #[test]
    fn a_password_matches_only_its_own_credential() {
        for mechanism in ScramMechanism::ALL {
            let credential = new_credential("alice", mechanism, "s3cret", DEFAULT_ITERATIONS);
            assert_eq!(credential.salt.len(), SALT_BYTES);
            assert!(password_matches(&credential, "s3cret"));
            assert!(!password_matches(&credential, "s3cret "));
            assert_ne!(
                new_credential("alice", mechanism, "s3cret", 4096).salt,
                credential.salt
            );
        }
    }
}
