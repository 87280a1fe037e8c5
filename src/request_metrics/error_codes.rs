//! The error codes a response carries, as Kafka's `errorCounts()` collects
//! them: the top-level code, and one per partition, group, member or resource
//! result that has its own. Codes of 0 (no error) are left out.

use kafka_protocol::messages::ResponseKind;

/// Every non-zero error code in `response`.
pub fn error_codes(response: &ResponseKind) -> Vec<i16> {
    let mut codes = Vec::new();
    let mut add = |code: i16| {
        if code != 0 {
            codes.push(code);
        }
    };
    match response {
        ResponseKind::ApiVersions(r) => add(r.error_code),
        ResponseKind::Produce(r) => r
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .for_each(|p| add(p.error_code)),
        ResponseKind::Fetch(r) => {
            add(r.error_code);
            r.responses
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| add(p.error_code));
        }
        ResponseKind::ListOffsets(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| add(p.error_code)),
        ResponseKind::Metadata(r) => {
            for topic in &r.topics {
                add(topic.error_code);
                topic.partitions.iter().for_each(|p| add(p.error_code));
            }
        }
        ResponseKind::CreateTopics(r) => r.topics.iter().for_each(|t| add(t.error_code)),
        ResponseKind::DeleteTopics(r) => r.responses.iter().for_each(|t| add(t.error_code)),
        ResponseKind::FindCoordinator(r) => {
            add(r.error_code);
            r.coordinators.iter().for_each(|c| add(c.error_code));
        }
        ResponseKind::JoinGroup(r) => add(r.error_code),
        ResponseKind::SyncGroup(r) => add(r.error_code),
        ResponseKind::Heartbeat(r) => add(r.error_code),
        ResponseKind::LeaveGroup(r) => {
            add(r.error_code);
            r.members.iter().for_each(|m| add(m.error_code));
        }
        ResponseKind::OffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| add(p.error_code)),
        ResponseKind::OffsetFetch(r) => {
            add(r.error_code);
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| add(p.error_code));
            for group in &r.groups {
                add(group.error_code);
                group
                    .topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .for_each(|p| add(p.error_code));
            }
        }
        ResponseKind::OffsetDelete(r) => {
            add(r.error_code);
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| add(p.error_code));
        }
        ResponseKind::ListGroups(r) => add(r.error_code),
        ResponseKind::DescribeGroups(r) => r.groups.iter().for_each(|g| add(g.error_code)),
        ResponseKind::DeleteGroups(r) => r.results.iter().for_each(|g| add(g.error_code)),
        ResponseKind::DescribeConfigs(r) => r.results.iter().for_each(|c| add(c.error_code)),
        ResponseKind::AlterConfigs(r) => r.responses.iter().for_each(|c| add(c.error_code)),
        ResponseKind::IncrementalAlterConfigs(r) => {
            r.responses.iter().for_each(|c| add(c.error_code))
        }
        ResponseKind::CreatePartitions(r) => r.results.iter().for_each(|t| add(t.error_code)),
        ResponseKind::DeleteRecords(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| add(p.error_code)),
        ResponseKind::DescribeCluster(r) => add(r.error_code),
        ResponseKind::DescribeProducers(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| add(p.error_code)),
        ResponseKind::DescribeLogDirs(r) => {
            add(r.error_code);
            r.results.iter().for_each(|d| add(d.error_code));
        }
        ResponseKind::OffsetForLeaderEpoch(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| add(p.error_code)),
        ResponseKind::ElectLeaders(r) => {
            add(r.error_code);
            r.replica_election_results
                .iter()
                .flat_map(|t| &t.partition_result)
                .for_each(|p| add(p.error_code));
        }
        ResponseKind::ListPartitionReassignments(r) => add(r.error_code),
        ResponseKind::AlterPartitionReassignments(r) => {
            add(r.error_code);
            r.responses
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| add(p.error_code));
        }
        ResponseKind::DescribeTopicPartitions(r) => {
            for topic in &r.topics {
                add(topic.error_code);
                topic.partitions.iter().for_each(|p| add(p.error_code));
            }
        }
        ResponseKind::InitProducerId(r) => add(r.error_code),
        ResponseKind::DescribeClientQuotas(r) => add(r.error_code),
        ResponseKind::ListConfigResources(r) => add(r.error_code),
        ResponseKind::SaslHandshake(r) => add(r.error_code),
        ResponseKind::SaslAuthenticate(r) => add(r.error_code),
        ResponseKind::AlterReplicaLogDirs(r) => r
            .results
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| add(p.error_code)),
        ResponseKind::DescribeUserScramCredentials(r) => {
            add(r.error_code);
            r.results.iter().for_each(|u| add(u.error_code));
        }
        ResponseKind::AlterUserScramCredentials(r) => {
            r.results.iter().for_each(|u| add(u.error_code))
        }
        ResponseKind::AlterClientQuotas(r) => r.entries.iter().for_each(|e| add(e.error_code)),
        ResponseKind::CreateAcls(r) => r.results.iter().for_each(|a| add(a.error_code)),
        ResponseKind::DescribeAcls(r) => add(r.error_code),
        ResponseKind::DeleteAcls(r) => {
            for filter in &r.filter_results {
                add(filter.error_code);
                filter.matching_acls.iter().for_each(|a| add(a.error_code));
            }
        }
        ResponseKind::AddPartitionsToTxn(r) => {
            add(r.error_code);
            r.results_by_topic_v3_and_below
                .iter()
                .flat_map(|t| &t.results_by_partition)
                .for_each(|p| add(p.partition_error_code));
        }
        ResponseKind::AddOffsetsToTxn(r) => add(r.error_code),
        ResponseKind::TxnOffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| add(p.error_code)),
        ResponseKind::EndTxn(r) => add(r.error_code),
        ResponseKind::ListTransactions(r) => add(r.error_code),
        ResponseKind::DescribeTransactions(r) => {
            r.transaction_states.iter().for_each(|t| add(t.error_code))
        }
        ResponseKind::ConsumerGroupHeartbeat(r) => add(r.error_code),
        ResponseKind::ConsumerGroupDescribe(r) => r.groups.iter().for_each(|g| add(g.error_code)),
        ResponseKind::ShareGroupHeartbeat(r) => add(r.error_code),
        ResponseKind::DescribeShareGroupOffsets(r) => r.groups.iter().for_each(|g| {
            add(g.error_code);
            g.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| add(p.error_code))
        }),
        ResponseKind::AlterShareGroupOffsets(r) => {
            add(r.error_code);
            r.responses
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| add(p.error_code))
        }
        ResponseKind::DeleteShareGroupOffsets(r) => {
            add(r.error_code);
            r.responses.iter().for_each(|t| add(t.error_code))
        }
        ResponseKind::ShareGroupDescribe(r) => r.groups.iter().for_each(|g| add(g.error_code)),
        ResponseKind::ShareFetch(r) => {
            add(r.error_code);
            r.responses
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| {
                    add(p.error_code);
                    add(p.acknowledge_error_code);
                })
        }
        ResponseKind::ShareAcknowledge(r) => {
            add(r.error_code);
            r.responses
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| add(p.error_code))
        }
        // Every API the agent answers is listed above; one added later counts
        // its requests and times but no errors until it is listed here.
        _ => {}
    }
    codes
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
    };

    #[test]
    fn every_partition_error_is_counted_and_successes_are_not() {
        let partition = |code| PartitionProduceResponse::default().with_error_code(code);
        let response = ResponseKind::Produce(ProduceResponse::default().with_responses(vec![
            TopicProduceResponse::default().with_partition_responses(vec![
                partition(0),
                partition(6),
                partition(6),
            ]),
            TopicProduceResponse::default().with_partition_responses(vec![partition(3)]),
        ]));
        assert_eq!(error_codes(&response), vec![6, 6, 3]);
    }
}
