//! Access control entries as stored: who (principal, host) may or may not do
//! what (operation) on which resources (type, name, pattern). What they mean
//! for a request is the broker's business (its authorizer); the catalog
//! stores the set every agent enforces.
//!
//! The enums carry Kafka's type codes, which are also this catalog's column
//! values, so that the wire and the catalog never need a second mapping.

/// Generates an enum of Kafka codes with `code` and `from_code`.
macro_rules! kafka_codes {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Kafka's code.
            pub fn code(self) -> i8 {
                match self {
                    $($name::$variant => $code),+
                }
            }

            pub fn from_code(code: i8) -> Option<$name> {
                match code {
                    $($code => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

kafka_codes! {
    /// Kafka's ResourceType. `Any` only in filters.
    ResourceType {
        Any = 1,
        Topic = 2,
        Group = 3,
        Cluster = 4,
        TransactionalId = 5,
        DelegationToken = 6,
        User = 7,
    }
}

kafka_codes! {
    /// Kafka's PatternType. `Any` and `Match` only in filters.
    PatternType {
        Any = 1,
        Match = 2,
        Literal = 3,
        Prefixed = 4,
    }
}

kafka_codes! {
    /// Kafka's AclOperation. `Any` only in filters.
    AclOperation {
        Any = 1,
        All = 2,
        Read = 3,
        Write = 4,
        Create = 5,
        Delete = 6,
        Alter = 7,
        Describe = 8,
        ClusterAction = 9,
        DescribeConfigs = 10,
        AlterConfigs = 11,
        IdempotentWrite = 12,
        CreateTokens = 13,
        DescribeTokens = 14,
        TwoPhaseCommit = 15,
    }
}

kafka_codes! {
    /// Kafka's AclPermissionType. `Any` only in filters.
    AclPermission {
        Any = 1,
        Deny = 2,
        Allow = 3,
    }
}

/// One ACL: Kafka's AclBinding. Every field is concrete (no `Any`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    /// A name, a prefix (with [`PatternType::Prefixed`]) or `*` (every
    /// resource of the type, literal only).
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `TYPE:NAME`, e.g. `User:alice`; `User:*` is every user.
    pub principal: String,
    /// A client's IP address, or `*`.
    pub host: String,
    pub operation: AclOperation,
    pub permission: AclPermission,
}
