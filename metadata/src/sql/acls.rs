//! ACLs, the [`AclCatalog`] of the SQL catalog: one row per ACL
//! (`migrations/*/0012_acls.sql`).

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Transaction};

use super::rows::get;
use super::SqlCatalog;
use crate::acls::{AclBinding, AclOperation, AclPermission, PatternType, ResourceType};
use crate::catalog::AclCatalog;
use crate::{CatalogError, Result};

#[async_trait]
impl AclCatalog for SqlCatalog {
    async fn acls(&self) -> Result<Vec<AclBinding>> {
        self.read("acls", all).await
    }

    async fn create_acls(&self, acls: &[AclBinding]) -> Result<()> {
        self.write("create_acls", |tx| create(tx, acls)).await
    }

    async fn delete_acls(&self, acls: &[AclBinding]) -> Result<Vec<AclBinding>> {
        self.write("delete_acls", |tx| delete(tx, acls)).await
    }
}

/// Binds an ACL's columns as $1..$7, in the table's column order.
fn bind<'q>(
    query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    acl: &'q AclBinding,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    query
        .bind(i64::from(acl.resource_type.code()))
        .bind(acl.resource_name.as_str())
        .bind(i64::from(acl.pattern_type.code()))
        .bind(acl.principal.as_str())
        .bind(acl.host.as_str())
        .bind(i64::from(acl.operation.code()))
        .bind(i64::from(acl.permission.code()))
}

async fn create(mut tx: Transaction<'static, Any>, acls: &[AclBinding]) -> Result<()> {
    for acl in acls {
        bind(
            sqlx::query(
                "INSERT INTO acls (resource_type, resource_name, pattern_type, principal, host, \
                 operation, permission) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            ),
            acl,
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn delete(mut tx: Transaction<'static, Any>, acls: &[AclBinding]) -> Result<Vec<AclBinding>> {
    let mut deleted = Vec::new();
    for acl in acls {
        let rows = bind(
            sqlx::query(
                "DELETE FROM acls WHERE resource_type = $1 AND resource_name = $2 \
                 AND pattern_type = $3 AND principal = $4 AND host = $5 AND operation = $6 \
                 AND permission = $7",
            ),
            acl,
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if rows > 0 {
            deleted.push(acl.clone());
        }
    }
    tx.commit().await?;
    Ok(deleted)
}

async fn all(pool: &AnyPool) -> Result<Vec<AclBinding>> {
    let rows = sqlx::query(
        "SELECT resource_type, resource_name, pattern_type, principal, host, operation, \
         permission FROM acls ORDER BY resource_type, resource_name, pattern_type, principal, \
         host, operation, permission",
    )
    .fetch_all(pool)
    .await?;
    rows.iter().map(acl).collect()
}

/// A code column as the enum it holds.
fn code<T>(row: &AnyRow, column: &str, from_code: fn(i8) -> Option<T>) -> Result<T> {
    let value: i64 = get(row, column)?;
    i8::try_from(value)
        .ok()
        .and_then(from_code)
        .ok_or_else(|| CatalogError::Corrupt(format!("ACL {column} {value}")))
}

fn acl(row: &AnyRow) -> Result<AclBinding> {
    Ok(AclBinding {
        resource_type: code(row, "resource_type", ResourceType::from_code)?,
        resource_name: get(row, "resource_name")?,
        pattern_type: code(row, "pattern_type", PatternType::from_code)?,
        principal: get(row, "principal")?,
        host: get(row, "host")?,
        operation: code(row, "operation", AclOperation::from_code)?,
        permission: code(row, "permission", AclPermission::from_code)?,
    })
}
