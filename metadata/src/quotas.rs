//! Client quotas as stored: an entity (a user, a client id, or both, each
//! named or the default) and its quota values by key (`producer_byte_rate`,
//! ...). What a key means and which keys are accepted is the broker's
//! business; the catalog stores what it is given.

use std::collections::BTreeMap;

/// One part of an entity: a name, or the default for every name without a
/// quota of its own.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityName {
    Default,
    Named(String),
}

/// Whom a quota applies to; at least one part is present.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QuotaEntity {
    pub user: Option<EntityName>,
    pub client_id: Option<EntityName>,
}

/// An entity's quotas.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientQuota {
    pub entity: QuotaEntity,
    pub values: BTreeMap<String, f64>,
}

/// Changes to one entity's quotas: keys set to values, keys removed.
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaAlteration {
    pub entity: QuotaEntity,
    pub set: Vec<(String, f64)>,
    pub remove: Vec<String>,
}
