//! Kafka's authorizer semantics over a set of ACLs: which ACLs apply to a
//! resource, what an operation implies, deny over allow, and the default
//! when no ACL names the resource. Pure: no catalog, no requests.

use std::net::IpAddr;

use streamhouse_metadata::acls::{
    AclBinding, AclOperation, AclPermission, PatternType, ResourceType,
};

/// Kafka's wildcards: every resource of a type, every user, every host.
pub const WILDCARD: &str = "*";
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// The principal type of every principal this broker authenticates.
pub const USER_TYPE: &str = "User:";

/// An ACL as the authorizer reads it: its host parsed once.
#[derive(Clone, Debug)]
pub struct Rule {
    pub binding: AclBinding,
    /// `None` for `*`; an ACL whose host is not an IP address matches no
    /// client (Kafka compares it with the client's address as text).
    host: Option<Option<IpAddr>>,
}

impl Rule {
    pub fn new(binding: AclBinding) -> Rule {
        let host = if binding.host == WILDCARD {
            Some(None)
        } else {
            binding.host.parse().ok().map(Some)
        };
        Rule { binding, host }
    }

    /// Whether the ACL's resource pattern covers the resource.
    fn covers(&self, resource_type: ResourceType, name: &str) -> bool {
        let acl = &self.binding;
        acl.resource_type == resource_type
            && match acl.pattern_type {
                PatternType::Literal => acl.resource_name == name || acl.resource_name == WILDCARD,
                PatternType::Prefixed => name.starts_with(acl.resource_name.as_str()),
                _ => false,
            }
    }

    /// Whether the ACL is about this principal (`User:NAME`) from this host.
    fn names(&self, user: &str, host: IpAddr) -> bool {
        let principal = &self.binding.principal;
        let principal_matches = principal == WILDCARD_PRINCIPAL
            || principal
                .strip_prefix(USER_TYPE)
                .is_some_and(|name| name == user);
        let host_matches = match self.host {
            Some(None) => true,
            Some(Some(ip)) => ip == host,
            None => false,
        };
        principal_matches && host_matches
    }
}

/// Whether an allow ACL of `granted` grants `wanted`: itself, ALL, and
/// Kafka's implications (READ, WRITE, DELETE and ALTER imply DESCRIBE;
/// ALTER_CONFIGS implies DESCRIBE_CONFIGS).
fn grants(granted: AclOperation, wanted: AclOperation) -> bool {
    use AclOperation::*;
    granted == wanted
        || granted == All
        || (wanted == Describe && matches!(granted, Read | Write | Delete | Alter))
        || (wanted == DescribeConfigs && granted == AlterConfigs)
}

/// Whether a deny ACL of `denied` denies `wanted`: itself and ALL only (a
/// denied READ leaves DESCRIBE alone, as in Kafka).
fn denies(denied: AclOperation, wanted: AclOperation) -> bool {
    denied == wanted || denied == AclOperation::All
}

/// Kafka's decision for a principal that is not a super user: a matching
/// deny wins, then a matching allow, and with no ACL on the resource at all
/// (whoever it names) `allow_if_no_acl`.
pub fn decide(
    rules: &[Rule],
    user: &str,
    host: IpAddr,
    operation: AclOperation,
    resource_type: ResourceType,
    name: &str,
    allow_if_no_acl: bool,
) -> bool {
    let mut any_acl = false;
    let mut allowed = false;
    for rule in rules.iter().filter(|r| r.covers(resource_type, name)) {
        any_acl = true;
        if !rule.names(user, host) {
            continue;
        }
        match rule.binding.permission {
            AclPermission::Deny if denies(rule.binding.operation, operation) => return false,
            AclPermission::Allow if grants(rule.binding.operation, operation) => allowed = true,
            _ => {}
        }
    }
    allowed || (!any_acl && allow_if_no_acl)
}

/// Kafka's `authorizeByResourceType`: whether the principal may do
/// `operation` on at least one resource of the type, i.e. some allow ACL
/// for it is not wholly covered by a deny. Used where Kafka accepts WRITE on
/// any topic in place of the cluster's IDEMPOTENT_WRITE.
pub fn decide_any(
    rules: &[Rule],
    user: &str,
    host: IpAddr,
    operation: AclOperation,
    resource_type: ResourceType,
    allow_if_no_acl: bool,
) -> bool {
    let mine = |permission: AclPermission| {
        rules.iter().filter(move |r| {
            r.binding.resource_type == resource_type
                && r.binding.permission == permission
                && r.names(user, host)
                && (r.binding.operation == operation || r.binding.operation == AclOperation::All)
        })
    };
    let denied_whole = |allow: &Rule| {
        mine(AclPermission::Deny).any(|deny| {
            let (d, a) = (&deny.binding, &allow.binding);
            match d.pattern_type {
                PatternType::Literal if d.resource_name == WILDCARD => true,
                PatternType::Literal => {
                    a.pattern_type == PatternType::Literal && a.resource_name == d.resource_name
                }
                PatternType::Prefixed => a.resource_name.starts_with(d.resource_name.as_str()),
                _ => false,
            }
        })
    };
    if mine(AclPermission::Allow).any(|allow| !denied_whole(allow)) {
        return true;
    }
    allow_if_no_acl
        && !rules
            .iter()
            .any(|r| r.binding.resource_type == resource_type)
}

#[cfg(test)]
mod tests {
    use super::*;
    use AclOperation::*;

    fn rule(
        name: &str,
        pattern: PatternType,
        principal: &str,
        operation: AclOperation,
        permission: AclPermission,
    ) -> Rule {
        Rule::new(AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.to_owned(),
            pattern_type: pattern,
            principal: principal.to_owned(),
            host: WILDCARD.to_owned(),
            operation,
            permission,
        })
    }

    fn allow(name: &str, principal: &str, operation: AclOperation) -> Rule {
        rule(
            name,
            PatternType::Literal,
            principal,
            operation,
            AclPermission::Allow,
        )
    }

    const HOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn may(rules: &[Rule], user: &str, operation: AclOperation, topic: &str) -> bool {
        decide(
            rules,
            user,
            HOST,
            operation,
            ResourceType::Topic,
            topic,
            false,
        )
    }

    #[test]
    fn an_allow_grants_its_operation_and_kafkas_implications_only() {
        let rules = [allow("orders", "User:alice", Write)];
        assert!(may(&rules, "alice", Write, "orders"));
        assert!(may(&rules, "alice", Describe, "orders"));
        assert!(!may(&rules, "alice", Read, "orders"));
        assert!(!may(&rules, "bob", Write, "orders"));
        assert!(!may(&rules, "alice", Write, "orders2"));
        let configs = [allow("orders", "User:alice", AlterConfigs)];
        assert!(may(&configs, "alice", DescribeConfigs, "orders"));
        assert!(!may(&configs, "alice", Describe, "orders"));
        let all = [allow("orders", "User:alice", All)];
        assert!(may(&all, "alice", Delete, "orders"));
    }

    #[test]
    fn deny_wins_over_allow_for_its_operation_only() {
        let rules = [
            allow("orders", "User:*", All),
            rule(
                "orders",
                PatternType::Literal,
                "User:bob",
                Read,
                AclPermission::Deny,
            ),
        ];
        assert!(may(&rules, "alice", Read, "orders"));
        assert!(!may(&rules, "bob", Read, "orders"));
        assert!(may(&rules, "bob", Describe, "orders"));
        assert!(may(&rules, "bob", Write, "orders"));
    }

    #[test]
    fn prefixed_and_wildcard_patterns_cover_names() {
        let rules = [
            rule(
                "logs-",
                PatternType::Prefixed,
                "User:alice",
                Read,
                AclPermission::Allow,
            ),
            allow("*", "User:bob", Read),
        ];
        assert!(may(&rules, "alice", Read, "logs-app"));
        assert!(may(&rules, "alice", Read, "logs-"));
        assert!(!may(&rules, "alice", Read, "log"));
        assert!(may(&rules, "bob", Read, "anything"));
    }

    #[test]
    fn without_any_acl_on_the_resource_the_default_decides() {
        let rules = [allow("orders", "User:alice", Read)];
        let anyone = |topic, default| {
            decide(
                &rules,
                "bob",
                HOST,
                Read,
                ResourceType::Topic,
                topic,
                default,
            )
        };
        assert!(anyone("other", true));
        assert!(!anyone("other", false));
        // Some ACL names the topic, if not bob: no default.
        assert!(!anyone("orders", true));
    }

    #[test]
    fn hosts_are_matched_by_address() {
        let mut binding = allow("orders", "User:alice", Read).binding;
        binding.host = "10.0.0.7".to_owned();
        let rules = [Rule::new(binding.clone())];
        let from = |ip: &str| {
            decide(
                &rules,
                "alice",
                ip.parse().unwrap(),
                Read,
                ResourceType::Topic,
                "orders",
                false,
            )
        };
        assert!(from("10.0.0.7"));
        assert!(!from("10.0.0.8"));
        binding.host = "not-an-address".to_owned();
        let rules = [Rule::new(binding)];
        assert!(!decide(
            &rules,
            "alice",
            HOST,
            Read,
            ResourceType::Topic,
            "orders",
            false
        ));
    }

    #[test]
    fn any_resource_of_a_type_is_enough_unless_denied_wholly() {
        let any =
            |rules: &[Rule]| decide_any(rules, "alice", HOST, Write, ResourceType::Topic, false);
        assert!(!any(&[]));
        assert!(any(&[allow("orders", "User:alice", Write)]));
        assert!(!any(&[allow("orders", "User:alice", Read)]));
        assert!(!any(&[
            allow("orders", "User:alice", Write),
            rule(
                "ord",
                PatternType::Prefixed,
                "User:alice",
                Write,
                AclPermission::Deny
            ),
        ]));
        assert!(any(&[
            allow("orders", "User:alice", Write),
            allow("payments", "User:alice", Write),
            rule(
                "orders",
                PatternType::Literal,
                "User:alice",
                Write,
                AclPermission::Deny
            ),
        ]));
        assert!(decide_any(
            &[],
            "alice",
            HOST,
            Write,
            ResourceType::Topic,
            true
        ));
    }
}
