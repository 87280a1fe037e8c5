//! SCRAM credentials as stored (RFC 5802): what a server needs to check a
//! client's proof and prove itself in turn, without the password. How they
//! are derived and checked is the broker's business; the catalog stores what
//! it is given.

/// The SCRAM mechanisms Kafka defines, with Kafka's type numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// Kafka's ScramMechanism type (AlterUserScramCredentials, and this
    /// catalog's column).
    pub fn type_id(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_type_id(id: i8) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.type_id() == id)
    }

    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// One user's credential for one mechanism.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScramCredential {
    pub user: String,
    pub mechanism: ScramMechanism,
    pub salt: Vec<u8>,
    pub iterations: i32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}
