//! Client quotas (the values are in [`crate::quotas`]).

use async_trait::async_trait;

use crate::quotas::{ClientQuota, QuotaAlteration};
use crate::Result;

#[async_trait]
pub trait QuotaCatalog: Send + Sync + 'static {
    /// Every entity with at least one quota, in entity order.
    async fn client_quotas(&self) -> Result<Vec<ClientQuota>>;

    /// Applies every alteration in ONE transaction: each key set is inserted
    /// or replaced, each key removed is deleted (a missing key is no error).
    async fn alter_client_quotas(&self, alterations: &[QuotaAlteration]) -> Result<()>;
}
