//! The catalog's surface: one trait per concern, and [`Catalog`], all of them.
//!
//! Each trait declares the operations of one concern and is implemented by the
//! SQL catalog in the file of the same name under `sql/` (`topics.rs` here,
//! `sql/topics.rs` there). Adding an operation edits those two files. A new
//! concern (transactions, ACLs) adds a trait file here and its implementation
//! there, and joins the list of [`Catalog`]'s supertraits below; no existing
//! trait changes.
//!
//! Callers hold `Arc<dyn Catalog>` and call any operation on it: a supertrait's
//! methods resolve on the trait object without importing the supertrait. Code
//! holding a concrete catalog (a `SqlCatalog`) imports [`crate::prelude`].

mod acls;
mod agents;
mod changes;
mod credentials;
mod groups;
mod lifecycle;
mod log;
mod producers;
mod quotas;
mod retention;
mod shares;
mod topics;
mod transactions;

pub use acls::AclCatalog;
pub use agents::AgentCatalog;
pub use changes::{ChangeCatalog, HeadListener};
pub use credentials::CredentialCatalog;
pub use groups::GroupCatalog;
pub use lifecycle::LifecycleCatalog;
pub use log::LogCatalog;
pub use producers::ProducerCatalog;
pub use quotas::QuotaCatalog;
pub use retention::RetentionCatalog;
pub use shares::{ShareCatalog, ShareUpdate, StoredSharePartition};
pub use topics::{ConfigUpdate, TopicCatalog};
pub use transactions::TransactionCatalog;

/// Every concern of the catalog, as the broker and the storage layer use it.
///
/// Implemented for everything that implements all its supertraits; nothing
/// implements it by hand.
pub trait Catalog:
    TopicCatalog
    + LogCatalog
    + GroupCatalog
    + ProducerCatalog
    + LifecycleCatalog
    + AgentCatalog
    + ChangeCatalog
    + RetentionCatalog
    + QuotaCatalog
    + CredentialCatalog
    + AclCatalog
    + TransactionCatalog
    + ShareCatalog
{
}

impl<T> Catalog for T where
    T: TopicCatalog
        + LogCatalog
        + GroupCatalog
        + ProducerCatalog
        + LifecycleCatalog
        + AgentCatalog
        + ChangeCatalog
        + RetentionCatalog
        + QuotaCatalog
        + CredentialCatalog
        + AclCatalog
        + TransactionCatalog
        + ShareCatalog
        + ?Sized
{
}
