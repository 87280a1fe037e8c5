//! CreateAcls, DescribeAcls and DeleteAcls: the ACLs in the catalog, as
//! `kafka-acls` and the admin client manage them. Checks and messages are
//! Kafka's. With `--acls off` every request is answered SECURITY_DISABLED,
//! as a Kafka broker without an authorizer answers.
//!
//! Changing ACLs takes ALTER on the cluster, reading them DESCRIBE.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use streamhouse_metadata::acls::{AclBinding, AclOperation};

use super::groups::text;
use crate::acl::filter::{new_acl, AclFilter, RawAcl};
use crate::acl::Access;
use crate::{errors, Broker};

type Refusal = (ResponseError, String);

/// Why a request cannot be served at all: no authorizer, or the client may
/// not, or the ACLs cannot be read.
fn refusal(broker: &Broker, access: &Access, operation: AclOperation) -> Option<Refusal> {
    if !broker.authorizer.enabled() {
        return Some((
            ResponseError::SecurityDisabled,
            "No Authorizer is configured.".to_owned(),
        ));
    }
    if !access.allows_cluster(operation) {
        return Some((
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.".to_owned(),
        ));
    }
    None
}

/// Makes this agent enforce a change at once (the others follow within
/// their refresh interval).
async fn refresh(broker: &Broker) {
    if let Err(e) = broker.authorizer.refresh(broker.catalog.as_ref()).await {
        tracing::warn!(error = %format!("{e:#}"), "ACLs not refreshed after a change");
    }
}

pub async fn create(
    broker: &Broker,
    access: &Access,
    request: CreateAclsRequest,
) -> CreateAclsResponse {
    let result = |(error, message): Refusal| {
        AclCreationResult::default()
            .with_error_code(error.code())
            .with_error_message(Some(text(&message)))
    };
    if let Some(refused) = refusal(broker, access, AclOperation::Alter) {
        return CreateAclsResponse::default().with_results(
            request
                .creations
                .iter()
                .map(|_| result(refused.clone()))
                .collect(),
        );
    }
    let checked: Vec<Result<AclBinding, String>> = request
        .creations
        .iter()
        .map(|c| {
            new_acl(&RawAcl {
                resource_type: c.resource_type,
                resource_name: Some(c.resource_name.as_str()),
                pattern_type: c.resource_pattern_type,
                principal: Some(c.principal.as_str()),
                host: Some(c.host.as_str()),
                operation: c.operation,
                permission: c.permission_type,
            })
        })
        .collect();
    let valid: Vec<AclBinding> = checked.iter().filter_map(|c| c.clone().ok()).collect();
    let stored = if valid.is_empty() {
        Ok(())
    } else {
        broker.catalog.create_acls(&valid).await
    };
    refresh(broker).await;
    let results = checked
        .into_iter()
        .map(|checked| match (checked, &stored) {
            (Err(message), _) => result((ResponseError::InvalidRequest, message)),
            (Ok(_), Err(e)) => result((errors::catalog(e), e.to_string())),
            (Ok(_), Ok(())) => AclCreationResult::default(),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

pub async fn describe(
    broker: &Broker,
    access: &Access,
    request: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let failed = |(error, message): Refusal| {
        DescribeAclsResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(text(&message)))
    };
    if let Some(refused) = refusal(broker, access, AclOperation::Describe) {
        return failed(refused);
    }
    let filter = match AclFilter::parse(&RawAcl {
        resource_type: request.resource_type_filter,
        resource_name: request.resource_name_filter.as_deref(),
        pattern_type: request.pattern_type_filter,
        principal: request.principal_filter.as_deref(),
        host: request.host_filter.as_deref(),
        operation: request.operation,
        permission: request.permission_type,
    }) {
        Ok(filter) => filter,
        Err(message) => return failed((ResponseError::InvalidRequest, message)),
    };
    let acls = match broker.catalog.acls().await {
        Ok(acls) => acls,
        Err(e) => return failed((errors::catalog(&e), e.to_string())),
    };
    // Grouped by resource pattern, as Kafka answers.
    let mut resources: BTreeMap<_, Vec<AclDescription>> = BTreeMap::new();
    for acl in acls.into_iter().filter(|acl| filter.matches(acl)) {
        resources
            .entry((acl.resource_type, acl.resource_name, acl.pattern_type))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(text(&acl.principal))
                    .with_host(text(&acl.host))
                    .with_operation(acl.operation.code())
                    .with_permission_type(acl.permission.code()),
            );
    }
    DescribeAclsResponse::default()
        .with_error_message(None)
        .with_resources(
            resources
                .into_iter()
                .map(|((resource_type, name, pattern_type), acls)| {
                    DescribeAclsResource::default()
                        .with_resource_type(resource_type.code())
                        .with_resource_name(text(&name))
                        .with_pattern_type(pattern_type.code())
                        .with_acls(acls)
                })
                .collect(),
        )
}

pub async fn delete(
    broker: &Broker,
    access: &Access,
    request: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let failed = |(error, message): Refusal| {
        DeleteAclsFilterResult::default()
            .with_error_code(error.code())
            .with_error_message(Some(text(&message)))
    };
    let refused = refusal(broker, access, AclOperation::Alter);
    let stored = match &refused {
        Some(_) => Ok(Vec::new()),
        None => broker.catalog.acls().await,
    };
    let filters: Vec<Result<AclFilter, Refusal>> = request
        .filters
        .iter()
        .map(|f| match (&refused, &stored) {
            (Some(refused), _) => Err(refused.clone()),
            (None, Err(e)) => Err((errors::catalog(e), e.to_string())),
            (None, Ok(_)) => AclFilter::parse(&RawAcl {
                resource_type: f.resource_type_filter,
                resource_name: f.resource_name_filter.as_deref(),
                pattern_type: f.pattern_type_filter,
                principal: f.principal_filter.as_deref(),
                host: f.host_filter.as_deref(),
                operation: f.operation,
                permission: f.permission_type,
            })
            .map_err(|message| (ResponseError::InvalidRequest, message)),
        })
        .collect();
    let stored = stored.unwrap_or_default();
    // Each stored ACL goes to the first filter that matches it.
    let mut matched: Vec<Vec<AclBinding>> = vec![Vec::new(); filters.len()];
    for acl in stored {
        if let Some(i) = filters
            .iter()
            .position(|f| f.as_ref().is_ok_and(|f| f.matches(&acl)))
        {
            matched[i].push(acl);
        }
    }
    let doomed: Vec<AclBinding> = matched.iter().flatten().cloned().collect();
    let deleted = if doomed.is_empty() {
        Ok(Vec::new())
    } else {
        let deleted = broker.catalog.delete_acls(&doomed).await;
        refresh(broker).await;
        deleted
    };
    let results = filters
        .into_iter()
        .zip(matched)
        .map(|(filter, matched)| match (filter, &deleted) {
            (Err(refused), _) => failed(refused),
            (Ok(_), Err(e)) => failed((errors::catalog(e), e.to_string())),
            // Another agent may have deleted some meanwhile: only what this
            // request deleted is reported.
            (Ok(_), Ok(deleted)) => DeleteAclsFilterResult::default()
                .with_error_message(None)
                .with_matching_acls(
                    matched
                        .into_iter()
                        .filter(|acl| deleted.contains(acl))
                        .map(|acl| {
                            DeleteAclsMatchingAcl::default()
                                .with_error_message(None)
                                .with_resource_type(acl.resource_type.code())
                                .with_resource_name(text(&acl.resource_name))
                                .with_pattern_type(acl.pattern_type.code())
                                .with_principal(text(&acl.principal))
                                .with_host(text(&acl.host))
                                .with_operation(acl.operation.code())
                                .with_permission_type(acl.permission.code())
                        })
                        .collect(),
                ),
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
