//! DescribeClientQuotas and AlterClientQuotas: client quotas by user and
//! client id (named or default), stored in the catalog, as Kafka's
//! `kafka-configs --entity-type users|clients` reads and changes them.
//!
//! Only the quotas the agents enforce (`crate::quotas`) are accepted: the
//! byte rates (`producer_byte_rate`, `consumer_byte_rate`) and request time
//! (`request_percentage`). Controller-mutation quotas and `ip` entities are
//! refused with INVALID_REQUEST rather than stored without effect.

use std::collections::HashSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    alter_client_quotas_request, alter_client_quotas_response, describe_client_quotas_response,
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;
use streamhouse_metadata::acls::AclOperation;
use streamhouse_metadata::quotas::{ClientQuota, EntityName, QuotaAlteration, QuotaEntity};

use crate::acl::Access;
use crate::quotas::{CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE, REQUEST_PERCENTAGE};
use crate::{errors, Broker};

const USER: &str = "user";
const CLIENT_ID: &str = "client-id";
const IP: &str = "ip";

/// Kafka's filter match types.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

/// Kafka's quota key for user and client-id entities that is not enforced
/// here, so refused.
const UNENFORCED_KEY: &str = "controller_mutation_rate";

/// A refusal: the error and its message.
type Refusal = (ResponseError, String);

fn invalid(message: impl Into<String>) -> Refusal {
    (ResponseError::InvalidRequest, message.into())
}

pub async fn describe(
    broker: &Broker,
    request: DescribeClientQuotasRequest,
    access: &Access,
) -> DescribeClientQuotasResponse {
    if !access.allows_cluster(AclOperation::DescribeConfigs) {
        return describe_error(
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.".to_owned(),
        );
    }
    let filter = match Filter::parse(&request) {
        Ok(filter) => filter,
        Err((error, message)) => return describe_error(error, message),
    };
    let quotas = match broker.catalog.client_quotas().await {
        Ok(quotas) => quotas,
        Err(e) => return describe_error(errors::catalog(&e), e.to_string()),
    };
    let entries = quotas
        .iter()
        .filter(|quota| filter.matches(&quota.entity))
        .map(entry)
        .collect();
    DescribeClientQuotasResponse::default()
        .with_error_message(None)
        .with_entries(Some(entries))
}

fn describe_error(error: ResponseError, message: String) -> DescribeClientQuotasResponse {
    DescribeClientQuotasResponse::default()
        .with_error_code(error.code())
        .with_error_message(Some(StrBytes::from_string(message)))
        .with_entries(None)
}

fn entry(quota: &ClientQuota) -> describe_client_quotas_response::EntryData {
    let mut entity = Vec::new();
    let mut part = |entity_type: &'static str, name: &Option<EntityName>| {
        if let Some(name) = name {
            entity.push(
                describe_client_quotas_response::EntityData::default()
                    .with_entity_type(StrBytes::from_static_str(entity_type))
                    .with_entity_name(named(name)),
            );
        }
    };
    part(USER, &quota.entity.user);
    part(CLIENT_ID, &quota.entity.client_id);
    let values = quota
        .values
        .iter()
        .map(|(key, value)| {
            describe_client_quotas_response::ValueData::default()
                .with_key(StrBytes::from_string(key.clone()))
                .with_value(*value)
        })
        .collect();
    describe_client_quotas_response::EntryData::default()
        .with_entity(entity)
        .with_values(values)
}

/// A name on the wire: null for the default.
fn named(name: &EntityName) -> Option<StrBytes> {
    match name {
        EntityName::Default => None,
        EntityName::Named(name) => Some(StrBytes::from_string(name.clone())),
    }
}

/// What one entity part of a describe filter accepts.
#[derive(Debug)]
enum Match {
    Exact(String),
    Default,
    Specified,
}

impl Match {
    fn accepts(&self, part: &Option<EntityName>) -> bool {
        match (self, part) {
            (_, None) => false,
            (Match::Specified, Some(_)) => true,
            (Match::Default, Some(name)) => *name == EntityName::Default,
            (Match::Exact(wanted), Some(EntityName::Named(name))) => wanted == name,
            (Match::Exact(_), Some(EntityName::Default)) => false,
        }
    }
}

#[derive(Debug, Default)]
struct Filter {
    user: Option<Match>,
    client_id: Option<Match>,
    /// Only entities with no parts beyond the filter's.
    strict: bool,
}

impl Filter {
    fn parse(request: &DescribeClientQuotasRequest) -> Result<Filter, Refusal> {
        let mut filter = Filter {
            strict: request.strict,
            ..Filter::default()
        };
        for component in &request.components {
            let matched = match (component.match_type, &component._match) {
                (MATCH_EXACT, Some(name)) => Match::Exact(name.to_string()),
                (MATCH_DEFAULT, None) => Match::Default,
                (MATCH_SPECIFIED, None) => Match::Specified,
                (match_type, name) => {
                    return Err(invalid(format!(
                        "Invalid match type {match_type} with match {name:?} for entity type {}",
                        component.entity_type
                    )))
                }
            };
            let slot = match component.entity_type.as_str() {
                USER => &mut filter.user,
                CLIENT_ID => &mut filter.client_id,
                // No ip quota can exist: nothing matches.
                IP => return Err(invalid("ip quotas are not supported by StreamHouse")),
                other => {
                    return Err(invalid(format!(
                        "Custom entity type '{other}' not supported"
                    )))
                }
            };
            if slot.replace(matched).is_some() {
                return Err(invalid(format!(
                    "Duplicate filter component entity type {}",
                    component.entity_type
                )));
            }
        }
        Ok(filter)
    }

    fn matches(&self, entity: &QuotaEntity) -> bool {
        let part_matches = |wanted: &Option<Match>, part: &Option<EntityName>| match wanted {
            Some(wanted) => wanted.accepts(part),
            None => !self.strict || part.is_none(),
        };
        part_matches(&self.user, &entity.user) && part_matches(&self.client_id, &entity.client_id)
    }
}

pub async fn alter(
    broker: &Broker,
    request: AlterClientQuotasRequest,
    access: &Access,
) -> AlterClientQuotasResponse {
    let allowed = access.allows_cluster(AclOperation::AlterConfigs);
    let mut outcomes: Vec<Result<QuotaAlteration, Refusal>> = request
        .entries
        .iter()
        .map(|entry| match allowed {
            true => alteration(entry),
            false => Err((
                ResponseError::ClusterAuthorizationFailed,
                "Cluster authorization failed.".to_owned(),
            )),
        })
        .collect();
    let valid: Vec<QuotaAlteration> = outcomes
        .iter()
        .filter_map(|outcome| outcome.as_ref().ok().cloned())
        .collect();
    if !request.validate_only && !valid.is_empty() {
        if let Err(e) = broker.catalog.alter_client_quotas(&valid).await {
            let refusal = (errors::catalog(&e), e.to_string());
            for outcome in &mut outcomes {
                if outcome.is_ok() {
                    *outcome = Err(refusal.clone());
                }
            }
        } else {
            // This agent applies them at once; the others at their next
            // refresh.
            broker.quotas.refresh(broker.catalog.as_ref()).await;
        }
    }
    let entries = request
        .entries
        .iter()
        .zip(outcomes)
        .map(|(entry, outcome)| {
            let entity = entry
                .entity
                .iter()
                .map(|part| {
                    alter_client_quotas_response::EntityData::default()
                        .with_entity_type(part.entity_type.clone())
                        .with_entity_name(part.entity_name.clone())
                })
                .collect();
            let response = alter_client_quotas_response::EntryData::default().with_entity(entity);
            match outcome {
                Ok(_) => response.with_error_message(None),
                Err((error, message)) => response
                    .with_error_code(error.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}

/// One entry of the request as a catalog change, or why it is refused.
fn alteration(entry: &alter_client_quotas_request::EntryData) -> Result<QuotaAlteration, Refusal> {
    if entry.entity.is_empty() {
        return Err(invalid("Invalid empty client quota entity"));
    }
    let mut entity = QuotaEntity::default();
    for part in &entry.entity {
        let name = match &part.entity_name {
            None => EntityName::Default,
            Some(name) => EntityName::Named(name.to_string()),
        };
        let slot = match part.entity_type.as_str() {
            USER => &mut entity.user,
            CLIENT_ID => &mut entity.client_id,
            IP => {
                return Err(invalid(
                    "ip quotas (connection_creation_rate) are not supported by StreamHouse",
                ))
            }
            other => {
                return Err(invalid(format!(
                    "Unhandled client quota entity type: {other}"
                )))
            }
        };
        if slot.replace(name).is_some() {
            return Err(invalid(format!(
                "Duplicate {} entity in the client quota entity",
                part.entity_type
            )));
        }
    }
    let mut alteration = QuotaAlteration {
        entity,
        set: Vec::new(),
        remove: Vec::new(),
    };
    let mut keys = HashSet::new();
    for op in &entry.ops {
        let key = op.key.as_str();
        if !keys.insert(key) {
            return Err(invalid(format!("Duplicate quota key {key}")));
        }
        if key == UNENFORCED_KEY {
            return Err(invalid(format!(
                "{key} is not supported by StreamHouse: only {PRODUCER_BYTE_RATE}, {CONSUMER_BYTE_RATE} and {REQUEST_PERCENTAGE} are enforced"
            )));
        }
        if ![PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, REQUEST_PERCENTAGE].contains(&key) {
            return Err(invalid(format!("Unknown quota key {key}")));
        }
        if op.remove {
            alteration.remove.push(key.to_owned());
            continue;
        }
        valid_value(key, op.value)?;
        alteration.set.push((key.to_owned(), op.value));
    }
    Ok(alteration)
}

/// Refuses a value the quota cannot mean: Kafka's byte rates are longs (a
/// whole number of bytes per second, at least 1 here); its request
/// percentage a double, here a positive one (a negative or zero share of a
/// thread would hold every request back; NaN and infinity are no share).
fn valid_value(key: &str, value: f64) -> Result<(), Refusal> {
    if key == REQUEST_PERCENTAGE {
        if value.is_finite() && value > 0.0 {
            return Ok(());
        }
        return Err(invalid(format!(
            "Invalid value {value} for {key}: a percentage of one thread's time, greater than 0"
        )));
    }
    if value.is_finite() && value >= 1.0 && value.fract() == 0.0 {
        return Ok(());
    }
    Err(invalid(format!(
        "Invalid value {value} for {key}: a byte rate is a whole number of bytes per second, at least 1"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_client_quotas_request;

    fn entity(user: Option<EntityName>, client_id: Option<EntityName>) -> QuotaEntity {
        QuotaEntity { user, client_id }
    }

    fn component(
        entity_type: &str,
        match_type: i8,
        name: Option<&str>,
    ) -> describe_client_quotas_request::ComponentData {
        describe_client_quotas_request::ComponentData::default()
            .with_entity_type(StrBytes::from_string(entity_type.to_owned()))
            .with_match_type(match_type)
            .with_match(name.map(|n| StrBytes::from_string(n.to_owned())))
    }

    #[test]
    fn values_are_refused_unless_the_quota_can_mean_them() {
        for (key, value) in [
            (REQUEST_PERCENTAGE, 0.01),
            (REQUEST_PERCENTAGE, 250.0),
            (PRODUCER_BYTE_RATE, 1.0),
            (CONSUMER_BYTE_RATE, 1048576.0),
        ] {
            assert!(valid_value(key, value).is_ok(), "{key}={value}");
        }
        for (key, value) in [
            (REQUEST_PERCENTAGE, -1.0),
            (REQUEST_PERCENTAGE, 0.0),
            (REQUEST_PERCENTAGE, f64::NAN),
            (REQUEST_PERCENTAGE, f64::INFINITY),
            (PRODUCER_BYTE_RATE, 0.5),
            (CONSUMER_BYTE_RATE, -1.0),
        ] {
            assert!(valid_value(key, value).is_err(), "{key}={value}");
        }
    }

    #[test]
    fn filters_match_exact_default_and_specified_parts_strictly_or_not() {
        let c1 = entity(None, Some(EntityName::Named("c1".into())));
        let default_client = entity(None, Some(EntityName::Default));
        let user_c1 = entity(
            Some(EntityName::Named("u".into())),
            Some(EntityName::Named("c1".into())),
        );
        let filter = |components, strict| {
            Filter::parse(
                &DescribeClientQuotasRequest::default()
                    .with_components(components)
                    .with_strict(strict),
            )
            .unwrap()
        };
        let exact = filter(vec![component(CLIENT_ID, MATCH_EXACT, Some("c1"))], false);
        assert!(exact.matches(&c1) && exact.matches(&user_c1) && !exact.matches(&default_client));
        let strict = filter(vec![component(CLIENT_ID, MATCH_EXACT, Some("c1"))], true);
        assert!(strict.matches(&c1) && !strict.matches(&user_c1));
        let default = filter(vec![component(CLIENT_ID, MATCH_DEFAULT, None)], false);
        assert!(default.matches(&default_client) && !default.matches(&c1));
        let any = filter(vec![component(CLIENT_ID, MATCH_SPECIFIED, None)], true);
        assert!(any.matches(&c1) && any.matches(&default_client) && !any.matches(&user_c1));
        assert!(Filter::parse(
            &DescribeClientQuotasRequest::default().with_components(vec![
                component(USER, MATCH_SPECIFIED, None),
                component(USER, MATCH_DEFAULT, None),
            ])
        )
        .is_err());
    }
}
