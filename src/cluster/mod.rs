//! The cluster of agents sharing one catalog and one store: this agent's
//! membership (`membership.rs`), the view of the live agents and the placement
//! of partitions, groups and background work on it (`view.rs`, by rendezvous
//! hashing in `rendezvous.rs`), the background work this agent does
//! (`work.rs`), and the zone a client names (`zone.rs`).
//!
//! Agents never talk to each other: the catalog is the only channel. Every
//! agent serves every partition; placement only says which agent clients are
//! pointed at, so a view that lags by a poll costs a client a metadata refresh,
//! never an error.

mod membership;
pub mod rendezvous;
mod view;
mod work;
pub mod zone;

pub use membership::{AgentIdentity, Membership};
pub use view::View;
pub use zone::client_zone;
