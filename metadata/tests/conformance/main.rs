//! The catalog conformance suite: the same cases against every backend, with the
//! topic cache on and off.
//!
//! SQLite runs on a fresh temporary file per test. PostgreSQL needs a server in
//! `STREAMHOUSE_TEST_POSTGRES_URL` (see `metadata/README.md`); each test creates a
//! database of its own and drops it afterwards. Without the variable the
//! PostgreSQL tests fail; they are never skipped.

mod acls;
mod admin;
mod agents;
mod cases;
mod changes;
mod cleaner;
mod compaction;
mod credentials;
mod group_leases;
mod groups;
mod harness;
mod idempotence;
mod membership;
mod producer_expiry;
mod quotas;
mod retention;
mod shares;
mod timeouts;
mod transactions;

/// Declares one `#[tokio::test]` per case for `$target`.
macro_rules! conformance_tests {
    ($target:expr) => {
        conformance_tests!(@catalog $target;
            created_topic_is_found_by_name_and_id_and_listed,
            new_partitions_start_empty_at_offset_zero,
            creating_an_existing_topic_fails_with_topic_already_exists,
            deleting_an_unknown_topic_fails_with_unknown_topic,
            deleted_topic_is_gone_with_its_partitions_and_index,
            recreated_topic_gets_a_new_id_and_starts_at_offset_zero,
            commits_assign_contiguous_offsets_across_runs_and_objects,
            one_object_holds_runs_of_several_partitions_and_topics,
            runs_for_missing_partitions_are_reported_while_the_rest_commit,
            objects_committed_together_get_offsets_in_order,
            a_failed_commit_appends_nothing,
            invalid_requests_are_refused,
            index_entries_start_at_the_entry_holding_the_offset,
            index_entries_respect_the_limit,
            timestamp_lookup_finds_the_first_entry_reaching_the_timestamp,
            committed_offsets_are_overwritten_and_read_back_in_order,
            stored_groups_are_replaced_whole_and_deleted_with_their_offsets,
            producer_ids_are_unique_and_epochs_bump,
            producer_batches_are_recorded_with_their_offsets_newest_five_kept,
            topic_configs_are_replaced_in_one_step_or_not_at_all,
            added_partitions_start_empty_and_counts_only_grow,
            log_start_moves_forward_only_and_within_the_log,
            partition_producers_lists_each_producers_newest_batch,
            client_quotas_are_set_replaced_and_removed,
            scram_credentials_are_stored_replaced_and_deleted,
            acls_are_added_once_listed_and_deleted_exactly,
            share_partitions_are_rewritten_listed_and_forgotten_per_topic,
        );
        conformance_tests!(@compaction $target;
            compaction_candidates_are_only_those_of_the_shards_asked_for,
            a_compaction_swap_merges_adjacent_entries_and_keeps_lookups,
            a_compaction_swap_is_refused_when_a_source_entry_changed,
            a_compaction_swap_skips_partitions_of_deleted_topics,
            garbage_collection_retires_objects_nothing_points_into,
            the_catalog_tells_which_object_keys_it_knows,
        );
        conformance_tests!(@cleaner $target;
            a_cleaning_swap_replaces_the_cleaned_entries_and_raises_the_cleaned_offset,
            a_cleaning_swap_is_refused_whole_when_a_source_entry_changed,
        );
        conformance_tests!(@idempotence $target;
            a_batch_committed_through_another_agent_is_a_duplicate_with_its_offset_and_time,
            a_gap_in_sequences_is_out_of_order_and_takes_no_offsets,
            a_stale_epoch_is_refused_and_a_new_epoch_restarts_at_zero,
            a_duplicate_inside_one_commit_gets_the_offset_the_original_got_there,
            a_run_is_split_into_entries_around_the_appends_it_does_not_keep,
        );
        conformance_tests!(@transactions $target;
            a_transaction_commits_and_its_marker_is_appended_once,
            a_new_incarnation_fences_and_aborts_the_open_transaction,
            timed_out_transactions_are_fenced_and_handed_out_once,
            transaction_offsets_reach_the_group_only_when_it_commits,
            transaction_version_2_bumps_the_epoch_at_every_end,
        );
        conformance_tests!(@producer_expiry $target;
            an_idle_producers_state_expires_whole_and_an_active_ones_is_kept_whole,
            a_pass_in_small_steps_removes_every_idle_state_and_passes_active_ones,
            expired_producer_ids_are_forgotten_and_never_handed_out_again,
        );
        conformance_tests!(@retention $target;
            time_retention_drops_entries_up_to_the_first_that_has_not_expired,
            size_retention_keeps_at_least_the_limit_as_kafka_does,
            retention_never_moves_a_log_start_back_and_both_rules_apply,
            retention_sizes_count_the_entries_at_or_above_the_log_start,
            retention_leaves_sparse_objects_for_compaction,
        );
        conformance_tests!(@database $target;
            concurrent_commits_never_overlap_or_leave_gaps,
            concurrent_creates_of_one_name_make_one_topic,
            deleting_a_topic_while_commits_are_in_flight,
            reopening_the_database_shows_the_same_topics_and_offsets,
            every_agent_reports_the_same_cluster_id,
            concurrent_config_updates_lose_nothing,
            a_commit_stuck_on_a_lock_times_out_and_the_catalog_recovers,
        );
    };
    (@catalog $target:expr; $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                crate::harness::with_catalog($target, |catalog| {
                    Box::pin(crate::cases::$case(catalog))
                })
                .await;
            }
        )*
    };
    (@compaction $target:expr; $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                crate::harness::with_catalog($target, |catalog| {
                    Box::pin(crate::compaction::$case(catalog))
                })
                .await;
            }
        )*
    };
    (@retention $target:expr; $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                crate::harness::with_catalog($target, |catalog| {
                    Box::pin(crate::retention::$case(catalog))
                })
                .await;
            }
        )*
    };
    (@cleaner $target:expr; $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                crate::harness::with_catalog($target, |catalog| {
                    Box::pin(crate::cleaner::$case(catalog))
                })
                .await;
            }
        )*
    };
    (@idempotence $target:expr; $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                crate::harness::with_database($target, |db| {
                    Box::pin(crate::idempotence::$case(db))
                })
                .await;
            }
        )*
    };
    (@transactions $target:expr; $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                crate::harness::with_database($target, |db| {
                    Box::pin(crate::transactions::$case(db))
                })
                .await;
            }
        )*
    };
    (@producer_expiry $target:expr; $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                crate::harness::with_database($target, |db| {
                    Box::pin(crate::producer_expiry::$case(db))
                })
                .await;
            }
        )*
    };
    (@database $target:expr; $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                crate::harness::with_database($target, |db| Box::pin(crate::agents::$case(db)))
                    .await;
            }
        )*
    };
}

/// The cache's own cases; they build their catalogs themselves, so they run once
/// per backend.
macro_rules! cache_tests {
    ($target:expr) => {
        conformance_tests!(@database $target;
            cache_reflects_this_agents_creates_and_deletes_at_once,
            cache_sees_other_agents_creates_at_once_and_deletes_within_its_ttl,
            cache_forgets_a_topic_once_a_commit_finds_it_deleted,
        );
    };
}

/// Membership cases; they open their catalogs themselves, so they run once per
/// backend.
macro_rules! membership_tests {
    ($target:expr) => {
        membership_tests!(@each $target;
            automatic_node_ids_fill_gaps_from_zero_and_each_change_bumps_the_epoch,
            an_agent_restarting_on_its_address_replaces_its_previous_row,
            a_node_id_held_by_a_live_agent_is_refused_and_a_lapsed_one_is_taken,
            lapsed_agents_are_reaped_only_by_a_renewal_that_may_reap,
            agents_registering_together_get_distinct_node_ids,
            counters_start_at_zero_and_track_membership,
            every_listener_an_agent_advertises_is_read_back,
        );
    };
    (@each $target:expr; $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                crate::harness::with_database($target, |db| {
                    Box::pin(crate::membership::$case(db))
                })
                .await;
            }
        )*
    };
}

/// How agents learn of each other's changes; run once per backend.
macro_rules! change_tests {
    ($target:expr) => {
        change_tests!(@each $target;
            topic_changes_bump_the_catalog_counter,
            head_changes_list_each_change_once_in_order,
            heads_and_existing_topics_are_read_in_one_go,
            announced_heads_reach_other_agents_listeners,
            forgetting_cached_topics_shows_another_agents_change,
        );
    };
    (@each $target:expr; $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                crate::harness::with_database($target, |db| Box::pin(crate::changes::$case(db)))
                    .await;
            }
        )*
    };
}

/// Group lease cases; they register agents on catalogs they open, so they run
/// once per backend.
macro_rules! group_lease_tests {
    ($target:expr) => {
        group_lease_tests!(@each $target;
            a_free_group_is_acquired_at_epoch_one_and_each_acquisition_bumps_it,
            a_group_is_not_taken_over_while_its_owners_row_exists,
            a_group_is_taken_over_once_its_owner_left_or_was_reaped,
            group_writes_under_an_old_lease_epoch_are_refused,
            a_lease_is_released_only_at_its_own_epoch,
            of_agents_acquiring_a_group_together_one_wins,
        );
    };
    (@each $target:expr; $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                crate::harness::with_database($target, |db| {
                    Box::pin(crate::group_leases::$case(db))
                })
                .await;
            }
        )*
    };
}

/// What turning the cache off changes; run once per backend.
macro_rules! uncached_tests {
    ($target:expr) => {
        conformance_tests!(@database $target;
            without_the_cache_lookups_see_other_agents_deletes_at_once,
        );
    };
}

mod sqlite {
    conformance_tests!(crate::harness::SQLITE);
    cache_tests!(crate::harness::SQLITE);
    membership_tests!(crate::harness::SQLITE);
    change_tests!(crate::harness::SQLITE);
    group_lease_tests!(crate::harness::SQLITE);
}

mod sqlite_uncached {
    conformance_tests!(crate::harness::SQLITE_UNCACHED);
    uncached_tests!(crate::harness::SQLITE_UNCACHED);
}

mod postgres {
    conformance_tests!(crate::harness::POSTGRES);
    cache_tests!(crate::harness::POSTGRES);
    membership_tests!(crate::harness::POSTGRES);
    change_tests!(crate::harness::POSTGRES);
    group_lease_tests!(crate::harness::POSTGRES);
}

mod postgres_uncached {
    conformance_tests!(crate::harness::POSTGRES_UNCACHED);
    uncached_tests!(crate::harness::POSTGRES_UNCACHED);
}
