//! The group writes outside the rebalance protocol: committed offsets
//! (OffsetCommit, OffsetDelete) and deleting a group. Each is made under the
//! group's fence; a refused fence drops the group (see `ownership.rs`).

use kafka_protocol::error::ResponseError;
use streamhouse_metadata::CatalogError;

use super::{Coordinator, Group, GroupState};

impl Coordinator {
    /// Checks an OffsetCommit's member and generation and, if allowed, stores the
    /// offsets. The group is created for a commit outside group management.
    pub async fn commit_offsets(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        commits: &[streamhouse_metadata::groups::OffsetCommit],
    ) -> Option<ResponseError> {
        if let Err(error) = self.ensure_owned(group_id).await {
            return Some(error);
        }
        let group = match self.group(group_id) {
            Some(group) => group,
            None if generation < 0 => match self.group_or_create(group_id) {
                Some(group) => group,
                None => return Some(ResponseError::NotCoordinator),
            },
            // A generation of a group this coordinator never had.
            None => return Some(ResponseError::IllegalGeneration),
        };
        let mut group = group.lock().await;
        let partitions: Vec<(&str, i32)> = commits
            .iter()
            .map(|c| (c.topic.as_str(), c.partition))
            .collect();
        if let Some(error) = group.check_commit(
            member_id,
            instance_id,
            generation,
            &partitions,
            self.clock.now(),
        ) {
            return Some(error);
        }
        if group.state == GroupState::Empty
            && group.generation == 0
            && group.protocol_type.is_none()
        {
            // First commit of a group outside group management: it must exist
            // after a restart too (ListGroups, DescribeGroups).
            group.dirty = true;
        }
        if let Err(error) = self.persist(&mut group).await {
            return Some(crate::errors::catalog(&error));
        }
        if commits.is_empty() {
            return None;
        }
        let result = self
            .catalog
            .commit_offsets(group_id, group.fence, commits)
            .await;
        self.answer_write(&mut group, result)
    }

    /// A write's answer; a refused fence drops the group.
    fn answer_write(
        &self,
        group: &mut Group,
        result: Result<(), CatalogError>,
    ) -> Option<ResponseError> {
        let error = result.err()?;
        if matches!(error, CatalogError::NotCoordinator { .. }) {
            self.fenced(group);
        }
        Some(crate::errors::catalog(&error))
    }

    /// OffsetDelete's catalog write, for a group the caller holds locked.
    pub async fn delete_offsets(
        &self,
        group: &mut Group,
        partitions: &[(String, i32)],
    ) -> Option<ResponseError> {
        let result = self
            .catalog
            .delete_offsets(&group.id, group.fence, partitions)
            .await;
        self.answer_write(group, result)
    }

    /// Deletes an empty group and its offsets.
    pub async fn delete_group(&self, group_id: &str) -> Option<ResponseError> {
        if let Err(error) = self.ensure_owned(group_id).await {
            return Some(error);
        }
        let Some(group) = self.group(group_id) else {
            return Some(ResponseError::GroupIdNotFound);
        };
        let mut group = group.lock().await;
        match group.state {
            GroupState::Dead => return Some(ResponseError::GroupIdNotFound),
            GroupState::Empty if !group.has_consumer_members() => {}
            _ => return Some(ResponseError::NonEmptyGroup),
        }
        let result = self.catalog.delete_group(group_id, group.fence).await;
        if let Some(error) = self.answer_write(&mut group, result) {
            return Some(error);
        }
        group.state = GroupState::Dead;
        self.remove_group(group_id);
        None
    }
}
