//! Transaction version 2 (KIP-890 part 2): a Produce v12+ of transactional
//! batches adds its partitions to the producer's transaction itself (and
//! begins one), as Kafka's partition leader does on the coordinator's behalf;
//! clients of that version send no AddPartitionsToTxn.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ProduceRequest;
use streamhouse_metadata::producers::ProducerIdentity;
use streamhouse_metadata::transactions::TxnError;
use streamhouse_metadata::{CatalogError, Topic, TopicId};
use streamhouse_protocol::batch::BatchHeader;

use crate::{errors, Broker};

/// The first Produce version whose transactional batches add their partitions.
const FIRST_IMPLICIT_ADD_VERSION: i16 = 12;

/// Partitions whose implicit addition failed, and why.
#[derive(Default)]
pub(super) struct NotAdded {
    failed: BTreeMap<(TopicId, i32), ResponseError>,
}

impl NotAdded {
    pub(super) fn error(
        &self,
        topic: &Result<Option<Topic>, (ResponseError, Option<String>)>,
        partition: i32,
    ) -> Option<ResponseError> {
        let Ok(Some(topic)) = topic else {
            return None;
        };
        self.failed.get(&(topic.id, partition)).copied()
    }
}

/// Adds the partitions the request's transactional batches go to, in one
/// catalog transaction; what failed is answered per partition.
pub(super) async fn add_partitions(
    broker: &Broker,
    request: &ProduceRequest,
    version: i16,
) -> NotAdded {
    let mut not_added = NotAdded::default();
    let Some(id) = request.transactional_id.as_ref() else {
        return not_added;
    };
    if version < FIRST_IMPLICIT_ADD_VERSION {
        return not_added;
    }
    let by_id = version >= super::produce::FIRST_VERSION_BY_ID;
    let mut producer = None;
    let mut partitions = Vec::new();
    for topic_data in &request.topic_data {
        let Ok(Some(topic)) =
            super::named_topic(broker, &topic_data.name, topic_data.topic_id, by_id).await
        else {
            continue;
        };
        for partition in &topic_data.partition_data {
            let header = partition
                .records
                .as_ref()
                .and_then(|records| BatchHeader::parse(records).ok());
            let Some(header) = header.filter(|h| h.is_transactional() && h.producer_id >= 0) else {
                continue;
            };
            if !(0..topic.partition_count).contains(&partition.index) {
                continue;
            }
            producer.get_or_insert(ProducerIdentity {
                producer_id: header.producer_id,
                epoch: header.producer_epoch,
            });
            partitions.push((topic.id, partition.index));
        }
    }
    let Some(producer) = producer else {
        return not_added;
    };
    if let Err(e) = broker
        .catalog
        .add_partitions_to_transaction(id, producer, &partitions)
        .await
    {
        let error = match &e {
            // What a partition answers a fenced producer's batch.
            CatalogError::Transaction(
                TxnError::ProducerFenced { .. } | TxnError::InvalidProducerEpoch { .. },
            ) => ResponseError::InvalidProducerEpoch,
            CatalogError::Transaction(TxnError::InvalidProducerIdMapping(_)) => {
                ResponseError::InvalidTxnState
            }
            other => errors::catalog(other),
        };
        not_added.failed = partitions.into_iter().map(|p| (p, error)).collect();
    }
    not_added
}
