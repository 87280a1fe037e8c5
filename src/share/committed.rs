//! A share group at `share.isolation.level=read_committed`: which batches
//! of a read its members must never get. The read already ends at the last
//! stable offset, so every transaction in it has ended; of those, the data
//! of aborted ones is hidden, as a read_committed consumer hides it (the
//! catalog lists each aborted transaction's producer and first offset, and
//! the producer's abort marker ends it). Hidden batches are archived with
//! the control records: never delivered, never counted as in flight.

use streamhouse_metadata::transactions::AbortedTxn;
use streamhouse_protocol::batch::BatchHeader;

/// What the rule needs of one batch.
pub struct BatchFacts {
    pub header: BatchHeader,
    /// For a control batch, whether it commits (`Some(true)`) or aborts.
    pub marker: Option<bool>,
}

/// For each batch, in log order, whether it is data of an aborted
/// transaction. `aborted` are the partition's aborted transactions that
/// overlap the batches, in any order.
pub fn hidden(batches: &[BatchFacts], aborted: &[AbortedTxn]) -> Vec<bool> {
    let mut starts: Vec<&AbortedTxn> = aborted.iter().collect();
    starts.sort_by_key(|txn| txn.first_offset);
    let mut next_start = starts.into_iter().peekable();
    let mut aborting = std::collections::HashSet::new();
    batches
        .iter()
        .map(|batch| {
            let header = &batch.header;
            while let Some(txn) = next_start.next_if(|t| t.first_offset <= header.base_offset) {
                aborting.insert(txn.producer_id);
            }
            if header.is_control() {
                if batch.marker == Some(false) {
                    aborting.remove(&header.producer_id);
                }
                return false;
            }
            header.is_transactional() && aborting.contains(&header.producer_id)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRANSACTIONAL: i16 = 0x10;
    const CONTROL: i16 = 0x20;

    fn batch(
        base_offset: i64,
        producer_id: i64,
        attributes: i16,
        marker: Option<bool>,
    ) -> BatchFacts {
        BatchFacts {
            header: BatchHeader {
                base_offset,
                batch_length: 0,
                partition_leader_epoch: 0,
                magic: 2,
                crc: 0,
                attributes,
                last_offset_delta: 0,
                base_timestamp: 0,
                max_timestamp: 0,
                producer_id,
                producer_epoch: 0,
                base_sequence: 0,
                records_count: 1,
            },
            marker,
        }
    }

    #[test]
    fn only_data_of_aborted_transactions_is_hidden() {
        let log = [
            batch(0, 7, TRANSACTIONAL, None), // 7's aborted transaction
            batch(1, 8, TRANSACTIONAL, None), // 8's committed one
            batch(2, -1, 0, None),            // not transactional
            batch(3, 7, TRANSACTIONAL | CONTROL, Some(false)),
            batch(4, 8, TRANSACTIONAL | CONTROL, Some(true)),
            batch(5, 7, TRANSACTIONAL, None), // 7's next, committed
            batch(6, 7, TRANSACTIONAL | CONTROL, Some(true)),
        ];
        let aborted = [AbortedTxn {
            producer_id: 7,
            first_offset: 0,
        }];
        assert_eq!(
            hidden(&log, &aborted),
            vec![true, false, false, false, false, false, false]
        );
        assert_eq!(hidden(&log, &[]), vec![false; 7], "nothing aborted");
    }

    #[test]
    fn an_abort_counts_from_its_first_offset_on() {
        let log = [
            batch(10, 7, TRANSACTIONAL, None), // committed earlier transaction
            batch(11, 7, TRANSACTIONAL | CONTROL, Some(true)),
            batch(12, 7, TRANSACTIONAL, None), // aborted, starting at 12
            batch(13, 7, TRANSACTIONAL, None),
            batch(14, 7, TRANSACTIONAL | CONTROL, Some(false)),
        ];
        let aborted = [AbortedTxn {
            producer_id: 7,
            first_offset: 12,
        }];
        assert_eq!(
            hidden(&log, &aborted),
            vec![false, false, true, true, false]
        );
    }
}
