#!/usr/bin/env bash
# Plan → approve → apply, then drift, against a real MCP server that changes real state
# (server-memory: a knowledge graph in the file $INFRA_GRAPH). Needs the fixture servers
# (`npm ci --prefix fixtures/servers`) and an isola binary (ISOLA, default target/release/isola).
set -euo pipefail
cd "$(dirname "$0")/../.."
isola=${ISOLA:-target/release/isola}
export ISOLA_STORE=${ISOLA_STORE:-sqlite:$PWD/target/infra-example.db}
export INFRA_GRAPH=$PWD/target/infra-graph.jsonl
graph=$INFRA_GRAPH
run() { echo "\$ isola $*" >&2; "$isola" --config examples/infra/isola.json "$@"; }
plan_id() { awk 'NR == 1 { sub(":", "", $2); print $2 }'; }

cp examples/infra/seed.jsonl "$graph"
echo "== 1. plan: the changes are listed, none is made (one is destructive: a person decides)"
run plan examples/infra/network.ts | tee target/infra-plan.txt
id=$(plan_id < target/infra-plan.txt)
echo "== 2. approve, then apply: exactly the planned changes, each checked before it is sent"
run approvals approve "$id"
run apply "$id"
echo "== the graph now:"; cat "$graph"; echo

echo "== 3. drift: plan again from the start, then someone changes the graph before the apply"
cp examples/infra/seed.jsonl "$graph"
run plan examples/infra/network.ts > target/infra-plan.txt
id=$(plan_id < target/infra-plan.txt)
run approvals approve "$id"
echo '{"type":"entity","name":"vpc-staging","entityType":"vpc","observations":[]}' >> "$graph"
if run apply "$id"; then echo "the apply should have stopped" >&2; exit 1; fi
echo "== the apply stopped before any change: the graph is as the other person left it"
cat "$graph"; echo
