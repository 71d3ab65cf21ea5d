#!/bin/bash
# Cluster mode against the embedded default, in one run on one machine
# (docs/CLUSTER.md): durable reserve -> settle pairs/s over RPC of
#   1. one embedded purserd (RocksDB only),
#   2. one shard whose log of record is a JetStream stream with 3 replicas
#      (3 nats-server processes, 3 purserd nodes: a leader, 2 standbys),
#   3. two such shards at once (their leaders loaded together: the sum),
# then the failover time: kill -9 of shard s1's leader until the first
# acknowledged reservation at the standby that takes over.
# Run from the project root after a release build:
#   bench/cluster.sh          (SECS=15 per run; needs nats-server: scripts/setup)
# Prints "row" lines and a "ratios" line. Every process is on this machine, so
# the NATS servers, the standbys and the load generator share its cores with
# the leader: the figures are a floor for a cluster of machines.
set -u
SECS=${SECS:-15}
MODE=${MODE:-batch}
b=$PWD/build/bin
for x in purserd purser-bench; do [ -x "$b/$x" ] || { echo "no $b/$x"; exit 2; }; done
command -v nats-server >/dev/null || PATH=$PATH:/usr/sbin
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; sleep 0.5; rm -rf "$tmp"; }
trap cleanup EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
final() { grep -E '^  pairs ' | grep -Eo '\([0-9]+' | tr -d '('; }
wait_for() { for _ in $(seq 1 120); do [ -e "$1" ] && grep -q "${2:-}" "$1" 2>/dev/null && return 0; sleep 0.25; done; return 1; }
load() { "$b/purser-bench" rpc --key "$1" --connect "$2" --seconds "$SECS" --mode "$MODE" 2>&1 | final; }

# 1. The embedded default.
rp=$(port); hp=$(port)
"$b/purserd" --data-dir "$tmp/embedded" --rpc 127.0.0.1:$rp --http 127.0.0.1:$hp >"$tmp/embedded.log" 2>&1 &
pids+=($!)
wait_for "$tmp/embedded/admin.key"
embedded=$(load "$(cat "$tmp/embedded/admin.key")" 127.0.0.1:$rp)
kill "${pids[-1]}"
echo "row embedded $MODE: ${embedded:-?} pairs/s"

# The NATS cluster.
routes=(); client=(); urls=""
for i in 0 1 2; do client+=("$(port)"); routes+=("$(port)"); done
for i in 0 1 2; do
  urls="$urls${urls:+,}nats://127.0.0.1:${client[$i]}"
  cat >"$tmp/nats$i.conf" <<EOF
port: ${client[$i]}
server_name: n$i
max_payload: 8MB
jetstream { store_dir: "$tmp/js$i", max_memory_store: 64MB, max_file_store: 8GB }
cluster { name: bench, listen: 127.0.0.1:${routes[$i]}, routes: [nats-route://127.0.0.1:${routes[0]}, nats-route://127.0.0.1:${routes[1]}, nats-route://127.0.0.1:${routes[2]}] }
EOF
  nats-server -c "$tmp/nats$i.conf" >"$tmp/nats$i.log" 2>&1 &
  pids+=($!)
done

# Starts shard $1's three nodes; sets leader_rpc, leader_pid, key.
declare -A node_pid node_rpc
start_shard() {
  local shard=$1
  for i in 0 1 2; do
    local n=$shard-p$i r h
    r=$(port); h=$(port)
    "$b/purserd" --data-dir "$tmp/$n" --rpc 127.0.0.1:$r --http 127.0.0.1:$h --cluster "$urls" \
      --shard "$shard" --node "$n" --lease-ms 2000 >"$tmp/$n.log" 2>&1 &
    node_pid[$n]=$!; node_rpc[$n]=127.0.0.1:$r
    pids+=($!)
  done
  leader_rpc=""
  for _ in $(seq 1 240); do
    for i in 0 1 2; do
      if grep -q "purserd: serving" "$tmp/$shard-p$i.log" 2>/dev/null; then
        leader_rpc=${node_rpc[$shard-p$i]}; leader_pid=${node_pid[$shard-p$i]}
        key=$(cat "$tmp/$shard-p$i/admin.key"); return 0
      fi
    done
    sleep 0.25
  done
  echo "shard $shard: no leader"; exit 1
}

# 2. One shard on R3.
start_shard s1
s1_rpc=$leader_rpc; s1_pid=$leader_pid; s1_key=$key
one=$(load "$s1_key" "$s1_rpc")
echo "row cluster one shard R3 $MODE: ${one:-?} pairs/s"

# 3. Two shards at once.
start_shard s2
s2_rpc=$leader_rpc; s2_key=$key
load "$s1_key" "$s1_rpc" >"$tmp/two1" &
l1=$!
load "$s2_key" "$s2_rpc" >"$tmp/two2" &
l2=$!
wait $l1 $l2
a=$(cat "$tmp/two1"); c=$(cat "$tmp/two2")
echo "row cluster two shards R3 $MODE: s1 ${a:-?} + s2 ${c:-?} = $(( ${a:-0} + ${c:-0} )) pairs/s"

# 4. Failover: kill -9 s1's leader, time until a standby answers a reservation.
killed=$(date +%s.%N)
kill -9 "$s1_pid"
standby=""
for _ in $(seq 1 400); do
  for i in 0 1 2; do
    n=s1-p$i
    [ "${node_pid[$n]}" = "$s1_pid" ] && continue
    if grep -q "purserd: serving" "$tmp/$n.log"; then standby=$n; break 2; fi
  done
  sleep 0.05
done
served=$(date +%s.%N)
echo "row failover s1: $standby serves $(python3 -c "print('%.2f' % ($served - $killed))") s after kill -9 of the leader (lease 2 s)"
ratio() { python3 -c "import sys; a,b=sys.argv[1:]; print('%.2f' % (float(a)/float(b)) if a and b and float(b) else '?')" "${1:-}" "${2:-}"; }
echo "ratios one_shard_r3/embedded=$(ratio "$one" "$embedded") two_shards/one_shard=$(ratio "$(( ${a:-0} + ${c:-0} ))" "$one")"
