//! SCRAM credentials, the [`CredentialCatalog`] of the SQL catalog: one row
//! per user and mechanism (`migrations/*/0011_scram_credentials.sql`).

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Transaction};

use super::rows::{get, to_i32};
use super::SqlCatalog;
use crate::catalog::CredentialCatalog;
use crate::credentials::{ScramCredential, ScramMechanism};
use crate::{CatalogError, Result};

#[async_trait]
impl CredentialCatalog for SqlCatalog {
    async fn scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<Option<ScramCredential>> {
        self.read("scram_credential", |pool| one(pool, user, mechanism))
            .await
    }

    async fn scram_credentials(&self) -> Result<Vec<ScramCredential>> {
        self.read("scram_credentials", all).await
    }

    async fn upsert_scram_credential(&self, credential: &ScramCredential) -> Result<()> {
        self.write("upsert_scram_credential", |tx| upsert(tx, credential))
            .await
    }

    async fn delete_scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Result<bool> {
        self.write("delete_scram_credential", |tx| delete(tx, user, mechanism))
            .await
    }
}

async fn one(
    pool: &AnyPool,
    user: &str,
    mechanism: ScramMechanism,
) -> Result<Option<ScramCredential>> {
    let row = sqlx::query(
        "SELECT user_name, mechanism, salt, iterations, stored_key, server_key \
         FROM scram_credentials WHERE user_name = $1 AND mechanism = $2",
    )
    .bind(user)
    .bind(i64::from(mechanism.type_id()))
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(credential).transpose()
}

async fn upsert(mut tx: Transaction<'static, Any>, credential: &ScramCredential) -> Result<()> {
    sqlx::query(
        "INSERT INTO scram_credentials \
         (user_name, mechanism, salt, iterations, stored_key, server_key) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (user_name, mechanism) DO UPDATE SET salt = excluded.salt, \
         iterations = excluded.iterations, stored_key = excluded.stored_key, \
         server_key = excluded.server_key",
    )
    .bind(credential.user.as_str())
    .bind(i64::from(credential.mechanism.type_id()))
    .bind(STANDARD.encode(&credential.salt))
    .bind(i64::from(credential.iterations))
    .bind(STANDARD.encode(&credential.stored_key))
    .bind(STANDARD.encode(&credential.server_key))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn delete(
    mut tx: Transaction<'static, Any>,
    user: &str,
    mechanism: ScramMechanism,
) -> Result<bool> {
    let deleted =
        sqlx::query("DELETE FROM scram_credentials WHERE user_name = $1 AND mechanism = $2")
            .bind(user)
            .bind(i64::from(mechanism.type_id()))
            .execute(&mut *tx)
            .await?
            .rows_affected();
    tx.commit().await?;
    Ok(deleted > 0)
}

async fn all(pool: &AnyPool) -> Result<Vec<ScramCredential>> {
    let rows = sqlx::query(
        "SELECT user_name, mechanism, salt, iterations, stored_key, server_key \
         FROM scram_credentials ORDER BY user_name, mechanism",
    )
    .fetch_all(pool)
    .await?;
    rows.iter().map(credential).collect()
}

fn credential(row: &AnyRow) -> Result<ScramCredential> {
    let type_id: i64 = get(row, "mechanism")?;
    let mechanism = i8::try_from(type_id)
        .ok()
        .and_then(ScramMechanism::from_type_id)
        .ok_or_else(|| CatalogError::Corrupt(format!("SCRAM mechanism type {type_id}")))?;
    Ok(ScramCredential {
        user: get(row, "user_name")?,
        mechanism,
        salt: bytes(row, "salt")?,
        iterations: to_i32(get(row, "iterations")?, "SCRAM iterations")?,
        stored_key: bytes(row, "stored_key")?,
        server_key: bytes(row, "server_key")?,
    })
}

fn bytes(row: &AnyRow, column: &str) -> Result<Vec<u8>> {
    let text: String = get(row, column)?;
    STANDARD
        .decode(text.as_bytes())
        .map_err(|e| CatalogError::Corrupt(format!("SCRAM credential {column}: {e}")))
}
