//! Client quotas, the [`QuotaCatalog`] of the SQL catalog: one row per entity
//! and key (`migrations/*/0010_client_quotas.sql`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Transaction};

use super::rows::get;
use super::SqlCatalog;
use crate::catalog::QuotaCatalog;
use crate::quotas::{ClientQuota, EntityName, QuotaAlteration, QuotaEntity};
use crate::{CatalogError, Result};

#[async_trait]
impl QuotaCatalog for SqlCatalog {
    async fn client_quotas(&self) -> Result<Vec<ClientQuota>> {
        self.read("client_quotas", client_quotas).await
    }

    async fn alter_client_quotas(&self, alterations: &[QuotaAlteration]) -> Result<()> {
        self.write("alter_client_quotas", |tx| alter(tx, alterations))
            .await
    }
}

/// An entity part as its (kind, name) columns.
fn columns(part: &Option<EntityName>) -> (i64, &str) {
    match part {
        None => (0, ""),
        Some(EntityName::Default) => (1, ""),
        Some(EntityName::Named(name)) => (2, name),
    }
}

fn part(kind: i64, name: String) -> Result<Option<EntityName>> {
    match kind {
        0 => Ok(None),
        1 => Ok(Some(EntityName::Default)),
        2 => Ok(Some(EntityName::Named(name))),
        other => Err(CatalogError::Corrupt(format!(
            "client quota entity part of kind {other}"
        ))),
    }
}

fn entity(row: &AnyRow) -> Result<QuotaEntity> {
    Ok(QuotaEntity {
        user: part(get(row, "user_kind")?, get(row, "user_name")?)?,
        client_id: part(get(row, "client_kind")?, get(row, "client_name")?)?,
    })
}

async fn client_quotas(pool: &AnyPool) -> Result<Vec<ClientQuota>> {
    let rows = sqlx::query(
        "SELECT user_kind, user_name, client_kind, client_name, quota_key, quota_value \
         FROM client_quotas \
         ORDER BY user_kind, user_name, client_kind, client_name, quota_key",
    )
    .fetch_all(pool)
    .await?;
    let mut quotas: BTreeMap<QuotaEntity, BTreeMap<String, f64>> = BTreeMap::new();
    for row in &rows {
        let text: String = get(row, "quota_value")?;
        let value = text
            .parse::<f64>()
            .map_err(|e| CatalogError::Corrupt(format!("client quota value '{text}': {e}")))?;
        quotas
            .entry(entity(row)?)
            .or_default()
            .insert(get(row, "quota_key")?, value);
    }
    Ok(quotas
        .into_iter()
        .map(|(entity, values)| ClientQuota { entity, values })
        .collect())
}

async fn alter(mut tx: Transaction<'static, Any>, alterations: &[QuotaAlteration]) -> Result<()> {
    for alteration in alterations {
        let (user_kind, user_name) = columns(&alteration.entity.user);
        let (client_kind, client_name) = columns(&alteration.entity.client_id);
        for key in &alteration.remove {
            sqlx::query(
                "DELETE FROM client_quotas WHERE user_kind = $1 AND user_name = $2 \
                 AND client_kind = $3 AND client_name = $4 AND quota_key = $5",
            )
            .bind(user_kind)
            .bind(user_name)
            .bind(client_kind)
            .bind(client_name)
            .bind(key.as_str())
            .execute(&mut *tx)
            .await?;
        }
        for (key, value) in &alteration.set {
            sqlx::query(
                "INSERT INTO client_quotas \
                 (user_kind, user_name, client_kind, client_name, quota_key, quota_value) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (user_kind, user_name, client_kind, client_name, quota_key) \
                 DO UPDATE SET quota_value = excluded.quota_value",
            )
            .bind(user_kind)
            .bind(user_name)
            .bind(client_kind)
            .bind(client_name)
            .bind(key.as_str())
            .bind(value.to_string())
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}
