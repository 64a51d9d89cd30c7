#!/bin/sh
# After an incident: rotate ours, audit every token, sweep the unknown ones.
# Usage: WHM_TOKEN=... ./runbook.sh SINCE   (SINCE: the start of the incident window, 2026-02-23)
set -eu
since=${1:?"give the start of the incident window, e.g. 2026-02-23"}
inv=fleet.toml
recipients=team-recipients.txt

# 1. Ours: new tokens, verified, then the old ones revoked.
tokenfleet rotate -i "$inv" --name 'ci-{date}-{run}' --revoke 'ci-*' \
    -R "$recipients" -o rotate.age --report rotate.json

# 2. The census (exit 1 = something unknown or suspicious: expected here).
tokenfleet audit -i "$inv" --known rotate.age.journal --since "$since" \
    --format json > census.json || true
jq '.summary' census.json

# 3. What would go, then the sweep (asks on a terminal; add --yes in automation).
tokenfleet sweep -i "$inv" --known rotate.age.journal --since "$since" --dry-run
tokenfleet sweep -i "$inv" --known rotate.age.journal --since "$since" \
    --journal incident.journal --report sweep.json

# 4. Clean?
tokenfleet audit -i "$inv" --known rotate.age.journal --since "$since" && echo "clean"
