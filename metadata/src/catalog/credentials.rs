//! SCRAM credentials (the values are in [`crate::credentials`]).

use async_trait::async_trait;

use crate::credentials::{ScramCredential, ScramMechanism};
use crate::Result;

#[async_trait]
pub trait CredentialCatalog: Send + Sync + 'static {
    /// A user's credential for one mechanism, if it has one.
    async fn scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<Option<ScramCredential>>;

    /// Every credential, by user then mechanism.
    async fn scram_credentials(&self) -> Result<Vec<ScramCredential>>;

    /// Inserts the credential, or replaces the user's one of that mechanism.
    async fn upsert_scram_credential(&self, credential: &ScramCredential) -> Result<()>;

    /// Deletes a user's credential of one mechanism; false if it had none.
    async fn delete_scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Result<bool>;
}
