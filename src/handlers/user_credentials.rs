//! DescribeUserScramCredentials and AlterUserScramCredentials: the SCRAM
//! credentials of SASL users, in the catalog (`crate::sasl`), as
//! `kafka-configs --entity-type users` reads and changes them. Checks and
//! messages are Kafka's (its controller's ScramControlManager); a user's
//! changes are applied only if none of them is refused.

use std::collections::{BTreeMap, HashMap, HashSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use streamhouse_metadata::acls::AclOperation;
use streamhouse_metadata::credentials::{ScramCredential, ScramMechanism};

use super::groups::text;
use crate::acl::Access;
use crate::sasl::scram::{credential_from_salted_password, DEFAULT_ITERATIONS, MAX_ITERATIONS};
use crate::{errors, Broker};

type Refusal = (ResponseError, String);

pub async fn describe(
    broker: &Broker,
    request: DescribeUserScramCredentialsRequest,
    access: &Access,
) -> DescribeUserScramCredentialsResponse {
    if !access.allows_cluster(AclOperation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(text("Cluster authorization failed.")));
    }
    let stored = match broker.catalog.scram_credentials().await {
        Ok(stored) => stored,
        Err(e) => {
            return DescribeUserScramCredentialsResponse::default()
                .with_error_code(errors::catalog(&e).code())
                .with_error_message(Some(text(&e.to_string())))
        }
    };
    let mut by_user: BTreeMap<String, Vec<CredentialInfo>> = BTreeMap::new();
    for credential in stored {
        by_user.entry(credential.user).or_default().push(
            CredentialInfo::default()
                .with_mechanism(credential.mechanism.type_id())
                .with_iterations(credential.iterations),
        );
    }
    let results = match request.users {
        // Every user with a credential.
        None => by_user
            .into_iter()
            .map(|(user, infos)| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(text(&user))
                    .with_error_message(None)
                    .with_credential_infos(infos)
            })
            .collect(),
        Some(users) => {
            let mut seen: HashMap<String, usize> = HashMap::new();
            for user in &users {
                *seen.entry(user.name.to_string()).or_default() += 1;
            }
            let mut answered = HashSet::new();
            let mut results = Vec::new();
            for user in users {
                let name = user.name.to_string();
                if !answered.insert(name.clone()) {
                    continue;
                }
                let result = DescribeUserScramCredentialsResult::default()
                    .with_user(user.name)
                    .with_error_message(None);
                results.push(if seen[&name] > 1 {
                    result
                        .with_error_code(ResponseError::DuplicateResource.code())
                        .with_error_message(Some(text(&format!(
                            "Cannot describe SCRAM credentials for the same user twice in a single request: {name}"
                        ))))
                } else if let Some(infos) = by_user.remove(&name) {
                    result.with_credential_infos(infos)
                } else {
                    result
                        .with_error_code(ResponseError::ResourceNotFound.code())
                        .with_error_message(Some(text(&format!(
                            "Attempt to describe a user credential that does not exist: {name}"
                        ))))
                });
            }
            results
        }
    };
    DescribeUserScramCredentialsResponse::default()
        .with_error_message(None)
        .with_results(results)
}

/// One change of a request, checked.
enum Change {
    Upsert(ScramCredential),
    Delete(ScramMechanism),
}

pub async fn alter(
    broker: &Broker,
    request: AlterUserScramCredentialsRequest,
    access: &Access,
) -> AlterUserScramCredentialsResponse {
    let allowed = access.allows_cluster(AclOperation::Alter);
    // Users in the order they first appear, each with its changes or the
    // first refusal.
    let mut order: Vec<String> = Vec::new();
    let mut outcomes: HashMap<String, Result<Vec<Change>, Refusal>> = HashMap::new();
    let mut altered: HashSet<(String, i8)> = HashSet::new();
    let mut note = |user: &str, mechanism: i8, change: Result<Change, Refusal>| {
        if !outcomes.contains_key(user) {
            order.push(user.to_owned());
        }
        let change = if altered.insert((user.to_owned(), mechanism)) {
            change
        } else {
            Err((
                ResponseError::DuplicateResource,
                "A user credential cannot be altered twice in the same request".to_owned(),
            ))
        };
        let entry = outcomes.entry(user.to_owned()).or_insert(Ok(Vec::new()));
        match (entry.as_mut(), change) {
            (Ok(changes), Ok(change)) => changes.push(change),
            (Ok(_), Err(refusal)) => *entry = Err(refusal),
            (Err(_), _) => {}
        }
    };
    for deletion in &request.deletions {
        let checked = mechanism(&deletion.name, deletion.mechanism).map(Change::Delete);
        note(&deletion.name, deletion.mechanism, checked);
    }
    for upsertion in &request.upsertions {
        let checked = mechanism(&upsertion.name, upsertion.mechanism).and_then(|m| {
            if upsertion.iterations < DEFAULT_ITERATIONS {
                return Err(unacceptable("Too few iterations"));
            }
            if upsertion.iterations > MAX_ITERATIONS {
                return Err(unacceptable("Too many iterations"));
            }
            Ok(Change::Upsert(credential_from_salted_password(
                &upsertion.name,
                m,
                upsertion.salt.to_vec(),
                upsertion.iterations,
                &upsertion.salted_password,
            )))
        });
        note(&upsertion.name, upsertion.mechanism, checked);
    }
    let mut results = Vec::with_capacity(order.len());
    for user in order {
        let outcome = match outcomes.remove(&user) {
            _ if !allowed => Err((
                ResponseError::ClusterAuthorizationFailed,
                "Cluster authorization failed.".to_owned(),
            )),
            Some(Ok(changes)) => apply(broker, &user, changes).await,
            Some(Err(refusal)) => Err(refusal),
            None => Ok(()),
        };
        // Kafka answers a null message with no error.
        let result = AlterUserScramCredentialsResult::default()
            .with_user(text(&user))
            .with_error_message(None);
        results.push(match outcome {
            Ok(()) => result,
            Err((error, message)) => result
                .with_error_code(error.code())
                .with_error_message(Some(text(&message))),
        });
    }
    AlterUserScramCredentialsResponse::default().with_results(results)
}

fn unacceptable(message: &str) -> Refusal {
    (ResponseError::UnacceptableCredential, message.to_owned())
}

fn mechanism(user: &str, type_id: i8) -> Result<ScramMechanism, Refusal> {
    if user.is_empty() {
        return Err(unacceptable("Username must not be empty"));
    }
    ScramMechanism::from_type_id(type_id).ok_or_else(|| {
        (
            ResponseError::UnsupportedSaslMechanism,
            "Unknown SCRAM mechanism".to_owned(),
        )
    })
}

/// Applies one user's checked changes; a deletion of a credential the user
/// does not have refuses the user's changes before any is made.
async fn apply(broker: &Broker, user: &str, changes: Vec<Change>) -> Result<(), Refusal> {
    let catalog_refusal =
        |e: streamhouse_metadata::CatalogError| (errors::catalog(&e), e.to_string());
    for change in &changes {
        if let Change::Delete(mechanism) = change {
            let stored = broker
                .catalog
                .scram_credential(user, *mechanism)
                .await
                .map_err(catalog_refusal)?;
            if stored.is_none() {
                return Err((
                    ResponseError::ResourceNotFound,
                    "Attempt to delete a user credential that does not exist".to_owned(),
                ));
            }
        }
    }
    for change in changes {
        match change {
            Change::Upsert(credential) => broker
                .catalog
                .upsert_scram_credential(&credential)
                .await
                .map_err(catalog_refusal)?,
            Change::Delete(mechanism) => {
                broker
                    .catalog
                    .delete_scram_credential(user, mechanism)
                    .await
                    .map_err(catalog_refusal)?;
            }
        }
    }
    Ok(())
}
