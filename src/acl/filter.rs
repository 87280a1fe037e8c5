//! ACL filters, as DescribeAcls and DeleteAcls send them: Kafka's
//! AclBindingFilter, with `Any` and `Match` and absent strings matching
//! broadly, and the checks a new ACL must pass.

use streamhouse_metadata::acls::{
    AclBinding, AclOperation, AclPermission, PatternType, ResourceType,
};

use super::rules::{USER_TYPE, WILDCARD};

/// Kafka's AclBindingFilter.
#[derive(Clone, Debug)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    /// `None` matches every name.
    pub resource_name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

/// A field as sent, before its code is known to be valid.
pub struct RawAcl<'a> {
    pub resource_type: i8,
    pub resource_name: Option<&'a str>,
    pub pattern_type: i8,
    pub principal: Option<&'a str>,
    pub host: Option<&'a str>,
    pub operation: i8,
    pub permission: i8,
}

fn known<T>(code: i8, from_code: fn(i8) -> Option<T>, what: &str) -> Result<T, String> {
    from_code(code).ok_or_else(|| format!("Unknown {what} {code}"))
}

impl AclFilter {
    /// The filter a request sent; an unknown code is refused (Kafka's
    /// "UNKNOWN" values match nothing and are rejected).
    pub fn parse(raw: &RawAcl<'_>) -> Result<AclFilter, String> {
        Ok(AclFilter {
            resource_type: known(raw.resource_type, ResourceType::from_code, "resource type")?,
            resource_name: raw.resource_name.map(str::to_owned),
            pattern_type: known(raw.pattern_type, PatternType::from_code, "pattern type")?,
            principal: raw.principal.map(str::to_owned),
            host: raw.host.map(str::to_owned),
            operation: known(raw.operation, AclOperation::from_code, "operation")?,
            permission: known(raw.permission, AclPermission::from_code, "permission type")?,
        })
    }

    /// Kafka's ResourcePatternFilter and AccessControlEntryFilter matching.
    pub fn matches(&self, acl: &AclBinding) -> bool {
        self.matches_pattern(acl)
            && self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && (self.operation == AclOperation::Any || self.operation == acl.operation)
            && (self.permission == AclPermission::Any || self.permission == acl.permission)
    }

    fn matches_pattern(&self, acl: &AclBinding) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != acl.resource_type {
            return false;
        }
        if !matches!(self.pattern_type, PatternType::Any | PatternType::Match)
            && self.pattern_type != acl.pattern_type
        {
            return false;
        }
        let Some(name) = &self.resource_name else {
            return true;
        };
        if self.pattern_type != PatternType::Match {
            return *name == acl.resource_name;
        }
        // MATCH: the ACLs that would apply to a resource of that name.
        match acl.pattern_type {
            PatternType::Literal => *name == acl.resource_name || acl.resource_name == WILDCARD,
            PatternType::Prefixed => name.starts_with(acl.resource_name.as_str()),
            _ => false,
        }
    }
}

/// The ACL CreateAcls sent, checked the way Kafka's controller checks it.
pub fn new_acl(raw: &RawAcl<'_>) -> Result<AclBinding, String> {
    let resource_type = known(raw.resource_type, ResourceType::from_code, "resource type")?;
    let pattern_type = known(raw.pattern_type, PatternType::from_code, "pattern type")?;
    let operation = known(raw.operation, AclOperation::from_code, "operation")?;
    let permission = known(raw.permission, AclPermission::from_code, "permission type")?;
    if resource_type == ResourceType::Any {
        return Err("Invalid resourceType ANY".to_owned());
    }
    if !matches!(pattern_type, PatternType::Literal | PatternType::Prefixed) {
        return Err(format!(
            "Invalid patternType {}",
            if pattern_type == PatternType::Any {
                "ANY"
            } else {
                "MATCH"
            }
        ));
    }
    if operation == AclOperation::Any {
        return Err("Invalid operation ANY".to_owned());
    }
    if permission == AclPermission::Any {
        return Err("Invalid permissionType ANY".to_owned());
    }
    let resource_name = raw.resource_name.unwrap_or_default();
    if resource_name.is_empty() {
        return Err("Resource name should not be empty".to_owned());
    }
    if resource_type == ResourceType::Cluster && resource_name != "kafka-cluster" {
        return Err("The only valid name for the CLUSTER resource is kafka-cluster".to_owned());
    }
    let principal = raw.principal.unwrap_or_default();
    // Kafka's KafkaPrincipal: TYPE:NAME. Only User principals authenticate
    // here, so an ACL for another type could never apply.
    if !principal.starts_with(USER_TYPE) || principal.len() == USER_TYPE.len() {
        return Err(format!(
            "Could not parse principal from `{principal}` (no colon is present separating the principal type from name, or the type is not User)"
        ));
    }
    let host = raw.host.unwrap_or_default();
    if host.is_empty() {
        return Err("Host should not be empty; use * for every host".to_owned());
    }
    Ok(AclBinding {
        resource_type,
        resource_name: resource_name.to_owned(),
        pattern_type,
        principal: principal.to_owned(),
        host: host.to_owned(),
        operation,
        permission,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(name: &str, pattern: PatternType) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.to_owned(),
            pattern_type: pattern,
            principal: "User:alice".to_owned(),
            host: "*".to_owned(),
            operation: AclOperation::Read,
            permission: AclPermission::Allow,
        }
    }

    fn filter(name: Option<&str>, pattern: PatternType) -> AclFilter {
        AclFilter {
            resource_type: ResourceType::Any,
            resource_name: name.map(str::to_owned),
            pattern_type: pattern,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: AclPermission::Any,
        }
    }

    #[test]
    fn filters_match_as_kafkas_do() {
        let literal = binding("orders", PatternType::Literal);
        let prefixed = binding("ord", PatternType::Prefixed);
        let wildcard = binding("*", PatternType::Literal);
        let any = filter(None, PatternType::Any);
        assert!(any.matches(&literal) && any.matches(&prefixed) && any.matches(&wildcard));
        let exact = filter(Some("orders"), PatternType::Any);
        assert!(exact.matches(&literal) && !exact.matches(&prefixed) && !exact.matches(&wildcard));
        let applying = filter(Some("orders"), PatternType::Match);
        assert!(applying.matches(&literal) && applying.matches(&prefixed));
        assert!(applying.matches(&wildcard));
        let only_prefixed = filter(Some("ord"), PatternType::Prefixed);
        assert!(only_prefixed.matches(&prefixed) && !only_prefixed.matches(&literal));
        let mut someone_else = filter(None, PatternType::Any);
        someone_else.principal = Some("User:bob".to_owned());
        assert!(!someone_else.matches(&literal));
        let mut writes = filter(None, PatternType::Any);
        writes.operation = AclOperation::Write;
        assert!(!writes.matches(&literal));
    }

    fn raw<'a>(name: &'a str, principal: &'a str) -> RawAcl<'a> {
        RawAcl {
            resource_type: ResourceType::Topic.code(),
            resource_name: Some(name),
            pattern_type: PatternType::Literal.code(),
            principal: Some(principal),
            host: Some("*"),
            operation: AclOperation::Read.code(),
            permission: AclPermission::Allow.code(),
        }
    }

    #[test]
    fn new_acls_are_checked_as_kafka_checks_them() {
        assert!(new_acl(&raw("orders", "User:alice")).is_ok());
        assert!(new_acl(&raw("", "User:alice")).is_err());
        assert!(new_acl(&raw("orders", "alice")).is_err());
        assert!(new_acl(&raw("orders", "User:")).is_err());
        let mut unknown = raw("orders", "User:alice");
        unknown.operation = 0;
        assert!(new_acl(&unknown).is_err());
        let mut any = raw("orders", "User:alice");
        any.pattern_type = PatternType::Match.code();
        assert!(new_acl(&any).is_err());
        let mut cluster = raw("other", "User:alice");
        cluster.resource_type = ResourceType::Cluster.code();
        assert!(new_acl(&cluster).is_err());
        cluster.resource_name = Some("kafka-cluster");
        assert!(new_acl(&cluster).is_ok());
    }
}
