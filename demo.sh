#!/usr/bin/env bash
# The newcomer's demo: start the bundled simulated fleet (20 hosts x 50 accounts, 20 ms per
# request, each host with its own self-signed certificate, pinned in the inventory), create a token
# for every account with tokenfleet, and show how to open the sealed handoff. Needs only cargo.
set -euo pipefail
cd "$(dirname "$0")"
dir=${DEMO_DIR:-demo-fleet}
hosts=${DEMO_HOSTS:-20}
accounts=${DEMO_ACCOUNTS:-50}

# The first build compiles about 200 crates (several minutes on 2 cores); cargo shows its progress.
echo "== building tokenfleet and the simulated fleet (release)"
cargo build --release --bin tokenfleet -p tokenfleet
cargo build --release -p cpanel-sim --example fleet
tdir=${CARGO_TARGET_DIR:-target}
tf=$tdir/release/tokenfleet

rm -rf "$dir"
"$tdir/release/examples/fleet" --hosts "$hosts" --accounts "$accounts" --latency 20ms --out "$dir" >"$dir.log" 2>&1 &
fleet_pid=$!
trap 'kill $fleet_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  [ -f "$dir/ready" ] && break
  kill -0 $fleet_pid 2>/dev/null || { cat "$dir.log"; exit 1; }
  sleep 0.1
done
[ -f "$dir/ready" ] || { echo "the simulated fleet did not start; see $dir.log" >&2; exit 1; }

# The WHM token of the simulated fleet, as a real deployment would keep it: in the environment.
set -a; . "$dir/fleet.env"; set +a

echo "== tokenfleet check: TLS, credentials, certificate pins (first hosts)"
"$tf" check -i "$dir/inventory.toml" --progress never -q | head -n 4
echo
echo "== tokenfleet create: one token per account, sealed to $dir/recipient.txt"
"$tf" create -i "$dir/inventory.toml" --name 'demo-{date}' --expires-in 30d \
  -R "$dir/recipient.txt" -o "$dir/handoff.age" --report "$dir/report.json"
echo
echo "== the handoff is an age file; open it with the identity that matches the recipient:"
echo "   $tf open $dir/handoff.age --identity $dir/identity.txt"
echo "   age -d -i $dir/identity.txt $dir/handoff.age      # no tokenfleet needed"
echo "   (report: $dir/report.json, journal: $dir/handoff.age.journal)"
rows=$("$tf" open "$dir/handoff.age" --identity "$dir/identity.txt" --format csv | tail -n +2 | wc -l)
echo "   it holds $rows tokens (host,account,token_name,token,url,created_at,expires_at)"
