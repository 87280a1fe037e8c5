//! InitProducerId: producer ids and epochs for idempotent producers (from the
//! catalog, or an epoch bump of the id they hold, KIP-360, v3+) and for
//! transactional ones (the transaction coordinator's, `crate::transactions`).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use streamhouse_metadata::acls::{AclOperation, ResourceType};
use streamhouse_metadata::producers::ProducerIdentity;
use streamhouse_metadata::transactions::TxnError;
use streamhouse_metadata::CatalogError;

use crate::acl::Access;
use crate::transactions::{self, CoordinatorError};
use crate::{errors, Broker};

pub async fn handle(
    broker: &Broker,
    request: InitProducerIdRequest,
    version: i16,
    access: &Access,
) -> InitProducerIdResponse {
    let refused = |error: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(error.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    let existing = (request.producer_id.0 >= 0).then_some(ProducerIdentity {
        producer_id: request.producer_id.0,
        epoch: request.producer_epoch,
    });
    if let Some(id) = request
        .transactional_id
        .as_ref()
        .filter(|id| !id.is_empty())
    {
        if !access.allows(AclOperation::Write, ResourceType::TransactionalId, id) {
            return refused(ResponseError::TransactionalIdAuthorizationFailed);
        }
        // As Kafka: a positive timeout no longer than transaction.max.timeout.ms.
        let timeout = request.transaction_timeout_ms;
        if timeout <= 0 || timeout > broker.config.transaction_max_timeout_ms {
            return refused(ResponseError::InvalidTransactionTimeout);
        }
        return match transactions::init_producer(broker, id, timeout, existing).await {
            Ok(identity) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(identity.producer_id))
                .with_producer_epoch(identity.epoch),
            Err(CoordinatorError::Catalog(CatalogError::Transaction(
                TxnError::ProducerFenced { .. },
            ))) if version < 4 => refused(ResponseError::InvalidProducerEpoch),
            Err(e) => refused(super::transactions::coordinator_error(&e)),
        };
    }
    // As Kafka: an idempotent producer needs IDEMPOTENT_WRITE on the
    // cluster, or WRITE on some topic.
    if !(access.allows_cluster(AclOperation::IdempotentWrite)
        || access.allows_some(AclOperation::Write, ResourceType::Topic))
    {
        return refused(ResponseError::ClusterAuthorizationFailed);
    }
    match broker.catalog.init_producer(existing).await {
        Ok(identity) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(identity.producer_id))
            .with_producer_epoch(identity.epoch),
        // PRODUCER_FENCED exists from v4; older clients know it as an epoch error.
        Err(CatalogError::ProducerFenced { .. }) if version < 4 => {
            refused(ResponseError::InvalidProducerEpoch)
        }
        Err(e) => refused(errors::catalog(&e)),
    }
}
