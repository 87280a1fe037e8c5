//! ACLs (the values are in [`crate::acls`]).

use async_trait::async_trait;

use crate::acls::AclBinding;
use crate::Result;

#[async_trait]
pub trait AclCatalog: Send + Sync + 'static {
    /// Every ACL, in a stable order.
    async fn acls(&self) -> Result<Vec<AclBinding>>;

    /// Adds the ACLs; one already stored stays as it is (adding is
    /// idempotent, as in Kafka).
    async fn create_acls(&self, acls: &[AclBinding]) -> Result<()>;

    /// Deletes exactly these ACLs; returns those that were stored.
    async fn delete_acls(&self, acls: &[AclBinding]) -> Result<Vec<AclBinding>>;
}
