#!/usr/bin/env bash
# Run one create as N shards on this machine with GNU parallel (Debian: apt-get install
# parallel), then check with `tokenfleet coverage` that every target of the inventory is done.
#
#   run-shards.sh INVENTORY N RECIPIENTS_FILE [OUT_DIR]
#
# Each shard is a complete run: OUT_DIR/deploy.K-of-N.age (its handoff), .journal, and
# OUT_DIR/report.K-of-N.json. A shard that failed or was killed is finished with
#   tokenfleet resume OUT_DIR/deploy.K-of-N.age.journal -k KEY --report OUT_DIR/report.K-of-N.json
# and this script's last step (coverage) run again. Environment: TOKENFLEET (the binary,
# default `tokenfleet`), NAME (the token name template, default deploy-{date}), JOBS (shards at
# once, default N), and whatever the inventory's credentials read (WHM_TOKEN, ...).
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 INVENTORY N RECIPIENTS_FILE [OUT_DIR]" >&2
  exit 2
fi
inv=$1 n=$2 recipients=$3 out=${4:-.}
export TOKENFLEET=${TOKENFLEET:-tokenfleet}
export NAME=${NAME:-'deploy-{date}'}
export inv n recipients out
mkdir -p "$out"

# --halt never: every shard runs whatever the others do; parallel's exit code is the number
# of shards that failed. The joblog says which (parallel --resume-failed reruns only them,
# but a shard with a journal is finished by `tokenfleet resume`, not by a new run).
set +e
seq 1 "$n" | parallel --jobs "${JOBS:-$n}" --halt never --joblog "$out/parallel.joblog" \
  '"$TOKENFLEET" create -i "$inv" --shard {}/"$n" --name "$NAME" -R "$recipients" \
     -o "$out/deploy.{}-of-$n.age" --report "$out/report.{}-of-$n.json" --progress never \
     2> "$out/shard.{}-of-$n.log"'
failed=$?
set -e
echo "shards that exited non-zero: $failed (logs: $out/shard.K-of-$n.log)" >&2

# Every target of the inventory done, in exactly one shard: exit 0; else 1, with the list.
"$TOKENFLEET" coverage -i "$inv" "$out"/report.*-of-"$n".json
