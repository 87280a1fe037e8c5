//! One share partition's record states (KIP-932): from the share-partition
//! start offset on, which records are acquired (by whom, until when),
//! acknowledged, archived or available again, and how often each was
//! delivered. Pure: the time is passed in (wall-clock milliseconds, so that
//! any agent can judge another's locks) and the document is stored by the
//! catalog (`ShareCatalog`).
//!
//! Records are kept as spans of equal state. Offsets from `end()` on were
//! never delivered. A lock that lapsed makes its records available again, or
//! archives them once they reached the delivery limit; this is judged
//! whenever the state is next touched, so no timer is needed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordState {
    Available,
    Acquired,
    Acknowledged,
    Archived,
}

/// How a member acknowledges a record (ShareAcknowledge's types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acknowledgement {
    /// An offset with no record (compacted away, a control record).
    Gap,
    Accept,
    Release,
    Reject,
}

impl Acknowledgement {
    pub fn from_code(code: i8) -> Option<Acknowledgement> {
        match code {
            0 => Some(Acknowledgement::Gap),
            1 => Some(Acknowledgement::Accept),
            2 => Some(Acknowledgement::Release),
            3 => Some(Acknowledgement::Reject),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Span {
    last: i64,
    state: RecordState,
    deliveries: i16,
    member: Option<String>,
    /// When an acquisition lock lapses (wall-clock ms).
    deadline_ms: i64,
}

/// Why an acknowledgement was refused (INVALID_RECORD_STATE, or
/// INVALID_REQUEST for a malformed batch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AckError {
    /// Some record of the batch is not acquired by this member (any more).
    NotAcquired,
    Malformed(&'static str),
}

/// A range of offsets acquired together, as ShareFetch reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acquired {
    pub first: i64,
    pub last: i64,
    pub deliveries: i16,
}

/// What a share partition is held to (group settings).
#[derive(Clone, Copy, Debug)]
pub struct ShareRules {
    pub lock_ms: i64,
    pub delivery_limit: i16,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharePartition {
    start: i64,
    spans: BTreeMap<i64, Span>,
}

impl SharePartition {
    /// A share partition that begins at `start` (the log start or end, as the
    /// group's `share.auto.offset.reset` says).
    pub fn starting_at(start: i64) -> SharePartition {
        SharePartition {
            start,
            spans: BTreeMap::new(),
        }
    }

    pub fn from_json(json: &str) -> Result<SharePartition, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The share-partition start offset: everything below is done.
    pub fn start(&self) -> i64 {
        self.start
    }

    /// The first offset never delivered.
    pub fn end(&self) -> i64 {
        self.spans
            .iter()
            .next_back()
            .map_or(self.start, |(_, span)| span.last + 1)
    }

    /// The first offset worth reading: the first available record below
    /// `end()`, else `end()`.
    pub fn next_candidate(&self, now_ms: i64, rules: &ShareRules) -> i64 {
        self.spans
            .iter()
            .find(|(_, span)| available(span, now_ms, rules))
            .map_or(self.end(), |(first, _)| *first)
    }

    /// The log moved its start past ours (retention, DeleteRecords): what
    /// lies below is gone.
    pub fn skip_to(&mut self, log_start: i64) {
        if log_start <= self.start {
            return;
        }
        self.split_at(log_start);
        self.spans = self.spans.split_off(&log_start);
        self.start = log_start;
    }

    /// Acquires for `member` the available records of `batches` (each
    /// `(first offset, last offset, is control)`, in offset order), up to
    /// `max_records`; control batches are archived, never delivered.
    pub fn acquire(
        &mut self,
        batches: &[(i64, i64, bool)],
        member: &str,
        now_ms: i64,
        rules: &ShareRules,
        max_records: i64,
    ) -> Vec<Acquired> {
        self.lapse_locks(now_ms, rules);
        let mut acquired: Vec<Acquired> = Vec::new();
        let mut budget = max_records.max(1);
        for &(first, last, control) in batches {
            let first = first.max(self.start);
            if first > last || budget == 0 {
                continue;
            }
            // Offsets never delivered become spans first.
            let end = self.end();
            if last >= end {
                let from = first.max(end);
                // An offset between end and the batch (nothing was read
                // there) is a gap: never delivered, archived.
                if from > end {
                    self.spans.insert(end, archived(from - 1));
                }
                self.spans.insert(
                    from,
                    Span {
                        last,
                        state: RecordState::Available,
                        deliveries: 0,
                        member: None,
                        deadline_ms: 0,
                    },
                );
            }
            self.split_at(first);
            self.split_at(last + 1);
            let firsts: Vec<i64> = self.spans.range(first..=last).map(|(f, _)| *f).collect();
            for span_first in firsts {
                if budget == 0 {
                    break;
                }
                let Some(span) = self.spans.get(&span_first) else {
                    continue;
                };
                if span.state != RecordState::Available {
                    continue;
                }
                if control {
                    self.spans.insert(span_first, archived(span.last));
                    continue;
                }
                let take_last = span.last.min(span_first + budget - 1);
                self.split_at(take_last + 1);
                let Some(span) = self.spans.get_mut(&span_first) else {
                    continue;
                };
                span.state = RecordState::Acquired;
                span.deliveries = span.deliveries.saturating_add(1);
                span.member = Some(member.to_owned());
                span.deadline_ms = now_ms + rules.lock_ms;
                budget -= take_last - span_first + 1;
                acquired.push(Acquired {
                    first: span_first,
                    last: take_last,
                    deliveries: span.deliveries,
                });
            }
        }
        self.tidy();
        acquired
    }

    /// Applies one acknowledgement batch of `member`: `types` has one type for
    /// the whole range or one per offset. All or nothing.
    pub fn acknowledge(
        &mut self,
        first: i64,
        last: i64,
        types: &[i8],
        member: &str,
        now_ms: i64,
        rules: &ShareRules,
    ) -> Result<(), AckError> {
        if first > last || first < 0 {
            return Err(AckError::Malformed(
                "the batch's first offset is after its last",
            ));
        }
        // Offsets after the first (cannot overflow: 0 <= first <= last);
        // the count itself would for a batch ending at i64::MAX.
        let after_first = last - first;
        let types: Vec<Acknowledgement> = types
            .iter()
            .map(|t| Acknowledgement::from_code(*t))
            .collect::<Option<_>>()
            .ok_or(AckError::Malformed("unknown acknowledge type"))?;
        if types.is_empty() || (types.len() != 1 && types.len() as i64 - 1 != after_first) {
            return Err(AckError::Malformed(
                "acknowledge types must be one, or one per offset",
            ));
        }
        self.lapse_locks(now_ms, rules);
        if first < self.start || last >= self.end() {
            return Err(AckError::NotAcquired);
        }
        self.split_at(first);
        self.split_at(last + 1);
        let held = self.spans.range(first..=last).all(|(_, span)| {
            span.state == RecordState::Acquired && span.member.as_deref() == Some(member)
        });
        if !held {
            self.tidy();
            return Err(AckError::NotAcquired);
        }
        for offset_first in first..=last {
            if types.len() == 1 && offset_first > first {
                break;
            }
            let (from, to, kind) = if types.len() == 1 {
                (first, last, types[0])
            } else {
                let kind = types[(offset_first - first) as usize];
                (offset_first, offset_first, kind)
            };
            self.settle(from, to, kind, rules);
        }
        self.tidy();
        Ok(())
    }

    /// Releases every record `member` holds (its share session closed).
    pub fn release_member(&mut self, member: &str, rules: &ShareRules) {
        let held: Vec<(i64, i64)> = self
            .spans
            .iter()
            .filter(|(_, s)| {
                s.state == RecordState::Acquired && s.member.as_deref() == Some(member)
            })
            .map(|(first, s)| (*first, s.last))
            .collect();
        for (first, last) in held {
            self.settle(first, last, Acknowledgement::Release, rules);
        }
        self.tidy();
    }

    /// Records acquired and not yet acknowledged.
    #[cfg(test)]
    fn in_flight(&self) -> usize {
        self.spans
            .iter()
            .filter(|(_, s)| s.state == RecordState::Acquired)
            .map(|(first, s)| (s.last - first + 1) as usize)
            .sum()
    }

    fn settle(&mut self, first: i64, last: i64, kind: Acknowledgement, rules: &ShareRules) {
        self.split_at(first);
        self.split_at(last + 1);
        let firsts: Vec<i64> = self.spans.range(first..=last).map(|(f, _)| *f).collect();
        for f in firsts {
            if let Some(span) = self.spans.get_mut(&f) {
                span.member = None;
                span.deadline_ms = 0;
                span.state = match kind {
                    Acknowledgement::Accept => RecordState::Acknowledged,
                    Acknowledgement::Gap | Acknowledgement::Reject => RecordState::Archived,
                    Acknowledgement::Release if span.deliveries >= rules.delivery_limit => {
                        RecordState::Archived
                    }
                    Acknowledgement::Release => RecordState::Available,
                };
            }
        }
    }

    /// Lapsed locks: available again, or archived at the delivery limit.
    fn lapse_locks(&mut self, now_ms: i64, rules: &ShareRules) {
        for span in self.spans.values_mut() {
            if span.state == RecordState::Acquired && span.deadline_ms <= now_ms {
                span.member = None;
                span.deadline_ms = 0;
                span.state = if span.deliveries >= rules.delivery_limit {
                    RecordState::Archived
                } else {
                    RecordState::Available
                };
            }
        }
    }

    /// Splits the span holding `offset` so that one begins there.
    fn split_at(&mut self, offset: i64) {
        let Some((&first, span)) = self.spans.range(..offset).next_back() else {
            return;
        };
        if span.last < offset {
            return;
        }
        let mut tail = span.clone();
        if let Some(head) = self.spans.get_mut(&first) {
            head.last = offset - 1;
        }
        tail.last = tail.last.max(offset);
        self.spans.insert(offset, tail);
    }

    /// Moves the start past finished records and merges equal neighbours.
    fn tidy(&mut self) {
        while let Some((&first, span)) = self.spans.iter().next() {
            if !matches!(
                span.state,
                RecordState::Acknowledged | RecordState::Archived
            ) {
                break;
            }
            self.start = span.last + 1;
            self.spans.remove(&first);
        }
        let mut merged: BTreeMap<i64, Span> = BTreeMap::new();
        for (first, span) in std::mem::take(&mut self.spans) {
            if let Some((_, previous)) = merged.iter_mut().next_back() {
                let same = previous.state == span.state
                    && previous.deliveries == span.deliveries
                    && previous.member == span.member
                    && previous.deadline_ms == span.deadline_ms
                    && previous.last + 1 == first;
                if same {
                    previous.last = span.last;
                    continue;
                }
            }
            merged.insert(first, span);
        }
        self.spans = merged;
    }
}

fn archived(last: i64) -> Span {
    Span {
        last,
        state: RecordState::Archived,
        deliveries: 0,
        member: None,
        deadline_ms: 0,
    }
}

fn available(span: &Span, now_ms: i64, rules: &ShareRules) -> bool {
    match span.state {
        RecordState::Available => true,
        RecordState::Acquired => {
            span.deadline_ms <= now_ms && span.deliveries < rules.delivery_limit
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: ShareRules = ShareRules {
        lock_ms: 30_000,
        delivery_limit: 3,
    };

    #[test]
    fn records_go_to_one_member_at_a_time_and_the_start_follows_acknowledgements() {
        let mut p = SharePartition::starting_at(0);
        let a = p.acquire(&[(0, 9, false)], "a", 0, &RULES, 4);
        assert_eq!(
            a,
            vec![Acquired {
                first: 0,
                last: 3,
                deliveries: 1
            }]
        );
        let b = p.acquire(&[(0, 9, false)], "b", 0, &RULES, 100);
        assert_eq!(
            b,
            vec![Acquired {
                first: 4,
                last: 9,
                deliveries: 1
            }]
        );
        assert_eq!(p.in_flight(), 10);
        assert_eq!(
            p.acknowledge(4, 9, &[1], "a", 0, &RULES),
            Err(AckError::NotAcquired),
            "b's records"
        );
        p.acknowledge(0, 3, &[1, 1, 2, 3], "a", 0, &RULES).unwrap();
        assert_eq!(p.start(), 2, "offset 2 released, so the start stops there");
        let again = p.acquire(&[(0, 9, false)], "b", 0, &RULES, 100);
        assert_eq!(
            again,
            vec![Acquired {
                first: 2,
                last: 2,
                deliveries: 2
            }]
        );
        p.acknowledge(2, 2, &[1], "b", 0, &RULES).unwrap();
        p.acknowledge(4, 9, &[1], "b", 0, &RULES).unwrap();
        assert_eq!((p.start(), p.end(), p.in_flight()), (10, 10, 0));
        let json = p.to_json();
        assert_eq!(SharePartition::from_json(&json).unwrap(), p);
    }

    #[test]
    fn a_lapsed_lock_redelivers_until_the_delivery_limit_archives() {
        let mut p = SharePartition::starting_at(5);
        for delivery in 1..=3 {
            let now = i64::from(delivery) * 40_000;
            assert_eq!(p.next_candidate(now, &RULES), 5);
            let got = p.acquire(&[(5, 6, false)], "a", now, &RULES, 10);
            assert_eq!(
                got,
                vec![Acquired {
                    first: 5,
                    last: 6,
                    deliveries: delivery
                }]
            );
        }
        assert!(p
            .acquire(&[(5, 6, false)], "b", 200_000, &RULES, 10)
            .is_empty());
        assert_eq!(p.start(), 7, "archived after three deliveries");
        assert_eq!(
            p.acknowledge(5, 6, &[1], "a", 200_000, &RULES),
            Err(AckError::NotAcquired)
        );
    }

    #[test]
    fn control_batches_and_gaps_are_never_delivered_and_release_frees_a_member() {
        let mut p = SharePartition::starting_at(0);
        let got = p.acquire(
            &[(0, 1, false), (2, 2, true), (5, 6, false)],
            "a",
            0,
            &RULES,
            10,
        );
        assert_eq!(
            got,
            vec![
                Acquired {
                    first: 0,
                    last: 1,
                    deliveries: 1
                },
                Acquired {
                    first: 5,
                    last: 6,
                    deliveries: 1
                }
            ]
        );
        p.release_member("a", &RULES);
        assert_eq!(p.in_flight(), 0);
        assert_eq!(p.next_candidate(0, &RULES), 0);
        p.skip_to(6);
        assert_eq!((p.start(), p.next_candidate(0, &RULES)), (6, 6));
        assert_eq!(
            p.acknowledge(6, 7, &[1, 1, 1], "a", 0, &RULES),
            Err(AckError::Malformed(
                "acknowledge types must be one, or one per offset"
            ))
        );
        // A batch to the last offset there is: refused, not an overflow.
        assert_eq!(
            p.acknowledge(0, i64::MAX, &[1], "a", 0, &RULES),
            Err(AckError::NotAcquired)
        );
        assert!(p.acknowledge(0, i64::MAX, &[1, 1], "a", 0, &RULES).is_err());
    }
}
