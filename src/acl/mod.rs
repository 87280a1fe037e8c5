//! Authorization: the ACLs every agent enforces (kept in the catalog, copied
//! here and refreshed), the super users and the default for resources no
//! ACL names, and [`Access`], what a request's handler asks "may this client
//! do that?". With `--acls off` every question is answered yes without
//! looking (the principal is authenticated, or anonymous, and may do
//! anything), as a Kafka broker without an authorizer.
//!
//! An ACL added or removed through one agent is enforced there at once and
//! by the others within [`REFRESH_EVERY`] (Kafka's brokers also learn ACLs
//! asynchronously, from the metadata log).

pub mod filter;
pub mod rules;

use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{bail, Context};
use streamhouse_metadata::acls::{AclOperation, ResourceType};
use streamhouse_metadata::Catalog;

use rules::{Rule, USER_TYPE};

/// How often an agent re-reads the ACLs from the catalog.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// The name of the one CLUSTER resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// Kafka's "authorized operations not requested" value.
pub const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

/// The operations Kafka reports as authorized, per resource type.
pub const TOPIC_OPERATIONS: &[AclOperation] = &[
    AclOperation::Read,
    AclOperation::Write,
    AclOperation::Create,
    AclOperation::Delete,
    AclOperation::Alter,
    AclOperation::Describe,
    AclOperation::DescribeConfigs,
    AclOperation::AlterConfigs,
];
pub const GROUP_OPERATIONS: &[AclOperation] = &[
    AclOperation::Read,
    AclOperation::Describe,
    AclOperation::Delete,
];
pub const CLUSTER_OPERATIONS: &[AclOperation] = &[
    AclOperation::Create,
    AclOperation::ClusterAction,
    AclOperation::DescribeConfigs,
    AclOperation::AlterConfigs,
    AclOperation::IdempotentWrite,
    AclOperation::Alter,
    AclOperation::Describe,
];

/// The authorization settings (`--acls`, `--super-user`,
/// `--allow-everyone-if-no-acl-found`).
#[derive(Clone, Debug, Default)]
pub struct AclSettings {
    pub enabled: bool,
    /// User names (the part after `User:`).
    pub super_users: Vec<String>,
    pub allow_if_no_acl: bool,
}

impl AclSettings {
    /// Checks `--super-user User:NAME` values.
    pub fn new(
        enabled: bool,
        super_users: &[String],
        allow_if_no_acl: bool,
    ) -> anyhow::Result<AclSettings> {
        let super_users = super_users
            .iter()
            .map(|principal| match principal.strip_prefix(USER_TYPE) {
                Some(name) if !name.is_empty() => Ok(name.to_owned()),
                _ => bail!("--super-user '{principal}' is not User:NAME"),
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(AclSettings {
            enabled,
            super_users,
            allow_if_no_acl,
        })
    }
}

/// The agent's authorizer: settings and the current ACLs.
pub struct Authorizer {
    settings: AclSettings,
    rules: RwLock<Arc<Vec<Rule>>>,
}

impl Authorizer {
    pub fn new(settings: AclSettings) -> Authorizer {
        Authorizer {
            settings,
            rules: RwLock::default(),
        }
    }

    /// Whether ACLs are enforced (`--acls on`).
    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    /// Re-reads the ACLs from the catalog.
    pub async fn refresh(&self, catalog: &dyn Catalog) -> anyhow::Result<()> {
        let acls = catalog.acls().await.context("cannot read the ACLs")?;
        let rules = Arc::new(acls.into_iter().map(Rule::new).collect());
        *self
            .rules
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = rules;
        Ok(())
    }

    /// Refreshes the ACLs every [`REFRESH_EVERY`] while `authorizer` lives;
    /// on failure the last ones stay.
    pub fn refresh_in_background(authorizer: &Arc<Authorizer>, catalog: Arc<dyn Catalog>) {
        if !authorizer.enabled() {
            return;
        }
        let authorizer = Arc::downgrade(authorizer);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH_EVERY).await;
                let Some(authorizer) = authorizer.upgrade() else {
                    return;
                };
                if let Err(e) = authorizer.refresh(catalog.as_ref()).await {
                    tracing::warn!(error = %format!("{e:#}"), "ACLs not refreshed");
                }
            }
        });
    }

    fn rules(&self) -> Arc<Vec<Rule>> {
        Arc::clone(
            &self
                .rules
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    fn is_super_user(&self, user: &str) -> bool {
        self.settings.super_users.iter().any(|s| s == user)
    }
}

/// One client's access: what a handler asks before it acts.
#[derive(Clone)]
pub struct Access {
    authorizer: Arc<Authorizer>,
    user: Arc<str>,
    host: IpAddr,
}

impl Access {
    /// `user` is the authenticated name (`ANONYMOUS` without
    /// authentication), `host` the client's address.
    pub fn new(authorizer: &Arc<Authorizer>, user: &Arc<str>, host: IpAddr) -> Access {
        Access {
            authorizer: Arc::clone(authorizer),
            user: Arc::clone(user),
            host,
        }
    }

    /// Whether everything is allowed without asking (ACLs off, or a super
    /// user): handlers skip per-resource work then.
    pub fn unrestricted(&self) -> bool {
        !self.authorizer.enabled() || self.authorizer.is_super_user(&self.user)
    }

    pub fn allows(&self, operation: AclOperation, resource_type: ResourceType, name: &str) -> bool {
        self.unrestricted()
            || rules::decide(
                &self.authorizer.rules(),
                &self.user,
                self.host,
                operation,
                resource_type,
                name,
                self.authorizer.settings.allow_if_no_acl,
            )
    }

    pub fn allows_topic(&self, operation: AclOperation, topic: &str) -> bool {
        self.allows(operation, ResourceType::Topic, topic)
    }

    pub fn allows_group(&self, operation: AclOperation, group: &str) -> bool {
        self.allows(operation, ResourceType::Group, group)
    }

    pub fn allows_cluster(&self, operation: AclOperation) -> bool {
        self.allows(operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// Whether the operation is allowed on some resource of the type
    /// (Kafka's `authorizeByResourceType`).
    pub fn allows_some(&self, operation: AclOperation, resource_type: ResourceType) -> bool {
        self.unrestricted()
            || rules::decide_any(
                &self.authorizer.rules(),
                &self.user,
                self.host,
                operation,
                resource_type,
                self.authorizer.settings.allow_if_no_acl,
            )
    }

    /// Kafka's authorized-operations bit field: bit `code` set for each of
    /// `operations` allowed on the resource.
    pub fn authorized_operations(
        &self,
        resource_type: ResourceType,
        name: &str,
        operations: &[AclOperation],
    ) -> i32 {
        operations
            .iter()
            .filter(|op| self.allows(**op, resource_type, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_acls_every_supported_operation_is_authorized_as_kafkas() {
        let authorizer = Arc::new(Authorizer::new(AclSettings::default()));
        let access = Access::new(&authorizer, &Arc::from("ANONYMOUS"), [127, 0, 0, 1].into());
        let all = |rt, name, ops| access.authorized_operations(rt, name, ops);
        assert_eq!(all(ResourceType::Topic, "t", TOPIC_OPERATIONS), 3576);
        assert_eq!(
            all(ResourceType::Cluster, CLUSTER_NAME, CLUSTER_OPERATIONS),
            8096
        );
        assert_eq!(all(ResourceType::Group, "g", GROUP_OPERATIONS), 328);
    }

    #[test]
    fn super_users_must_be_user_principals() {
        let settings = AclSettings::new(true, &["User:admin".to_owned()], false).unwrap();
        assert_eq!(settings.super_users, ["admin"]);
        assert!(AclSettings::new(true, &["admin".to_owned()], false).is_err());
        assert!(AclSettings::new(true, &["User:".to_owned()], false).is_err());
    }
}
