#!/usr/bin/env bash
# The agent of the journal-ceiling experiment, given to run.sh as --base-bin:
# a release build with experiment.patch applied (copied to $EXPERIMENT_BIN),
# offsets assigned in memory, every group of objects appended to
# $EXPERIMENT_LOG and fdatasynced before the acknowledgement, objects kept in
# memory. See docs/benchmarks.md, "What a journal would give".
export SH_EXP_FAKE_COMMIT=1 SH_EXP_LOG="${EXPERIMENT_LOG:-/var/tmp/journal-ceiling.log}"
exec "${EXPERIMENT_BIN:?the experiment build}" "$@" --store memory://
