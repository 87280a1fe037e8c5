//! The `throttle_time_ms` of every response an agent sends: a throttle is
//! reported in whichever response the client was throttled on, as Kafka
//! reports it (every client API's response has the field; versions that do
//! not encode it leave the client to find its connection muted).

use std::time::Duration;

use kafka_protocol::messages::ResponseKind;

use super::throttle_ms;

/// Declares the responses with a `throttle_time_ms` field (named as their
/// API keys), and [`field`] to reach it.
macro_rules! throttled_responses {
    ($($kind:ident),* $(,)?) => {
        fn field(body: &mut ResponseKind) -> Option<&mut i32> {
            match body {
                $(ResponseKind::$kind(response) => Some(&mut response.throttle_time_ms),)*
                _ => None,
            }
        }

        #[cfg(test)]
        const WITH_FIELD: &[kafka_protocol::messages::ApiKey] =
            &[$(kafka_protocol::messages::ApiKey::$kind),*];
    };
}

throttled_responses!(
    Produce,
    Fetch,
    ListOffsets,
    Metadata,
    OffsetCommit,
    OffsetFetch,
    FindCoordinator,
    JoinGroup,
    Heartbeat,
    LeaveGroup,
    SyncGroup,
    DescribeGroups,
    ListGroups,
    ApiVersions,
    CreateTopics,
    DeleteTopics,
    DeleteRecords,
    InitProducerId,
    OffsetForLeaderEpoch,
    DescribeConfigs,
    AlterConfigs,
    DescribeLogDirs,
    AlterReplicaLogDirs,
    CreatePartitions,
    DeleteGroups,
    ElectLeaders,
    IncrementalAlterConfigs,
    AlterPartitionReassignments,
    ListPartitionReassignments,
    OffsetDelete,
    DescribeClientQuotas,
    AlterClientQuotas,
    DescribeCluster,
    DescribeProducers,
    DescribeTopicPartitions,
    ListConfigResources,
    DescribeUserScramCredentials,
    AlterUserScramCredentials,
    CreateAcls,
    DescribeAcls,
    DeleteAcls,
    AddPartitionsToTxn,
    AddOffsetsToTxn,
    TxnOffsetCommit,
    EndTxn,
    ListTransactions,
    DescribeTransactions,
    ConsumerGroupHeartbeat,
    ConsumerGroupDescribe,
    ShareGroupHeartbeat,
    ShareGroupDescribe,
    ShareFetch,
    ShareAcknowledge,
    DescribeShareGroupOffsets,
    AlterShareGroupOffsets,
    DeleteShareGroupOffsets,
);

/// Raises the response's `throttle_time_ms` to `throttle` if lower: of a
/// byte-rate throttle already set (Produce, Fetch) and a request-time one,
/// the client waits out the larger, as on Kafka.
pub fn raise_throttle(body: &mut ResponseKind, throttle: Duration) {
    if let Some(field) = field(body) {
        *field = (*field).max(throttle_ms(throttle));
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::{ApiKey, MetadataResponse, ProduceResponse};
    use streamhouse_protocol::versions::ADVERTISED;

    use super::*;

    #[test]
    fn every_served_api_reports_a_throttle() {
        // The SASL responses have no such field; their requests are exempt
        // from the request quota (`request_time::exempt`).
        let sasl = [ApiKey::SaslHandshake, ApiKey::SaslAuthenticate];
        for api in ADVERTISED.iter().filter(|api| !sasl.contains(&api.key)) {
            assert!(WITH_FIELD.contains(&api.key), "{:?}", api.key);
        }
    }

    #[test]
    fn the_larger_throttle_is_reported() {
        let mut produce =
            ResponseKind::Produce(ProduceResponse::default().with_throttle_time_ms(800));
        raise_throttle(&mut produce, Duration::from_millis(300));
        let ResponseKind::Produce(ref response) = produce else {
            unreachable!()
        };
        assert_eq!(response.throttle_time_ms, 800);
        let mut metadata = ResponseKind::Metadata(MetadataResponse::default());
        raise_throttle(&mut metadata, Duration::from_millis(300));
        let ResponseKind::Metadata(response) = metadata else {
            unreachable!()
        };
        assert_eq!(response.throttle_time_ms, 300);
    }
}
