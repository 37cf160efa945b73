#!/bin/bash
# Waits for the running seeds 0-3 invocation, then trains seeds 4-5 and 6-7; each shard copied to the records.
cd /tmp/depthB
export PYTHONPATH=/tmp/depthB/src
REC=/work/main/benchmarks/records/2026-12-05-depth/shards
while pgrep -f "snakemake results/depth/shard.runs.csv" > /dev/null; do sleep 20; done
echo "$(date -u +%T) seeds 0-3 done" >> queue.log
git fetch -q origin && git checkout -q 5ae449ab147bdbff1af7d107d5b7d991306bf2ed 2>> queue.log  # main's shard code, no training code changed
save() {  # the shard of seeds $1 (a yaml list) under name $2, written by main's shard code
  printf 'depth: {seeds: %s}\n' "$1" > batch.yaml
  .venv/bin/snakemake results/depth/shard.runs.csv --cores 2 --configfile config/config.yaml config/offline.yaml \
    campaign.yaml batch.yaml >> "snake-$2.log" 2>&1
  cp results/depth/shard.runs.csv "$REC/$2.runs.csv"; cp results/depth/shard.epochs.csv "$REC/$2.epochs.csv"
  echo "$(date -u +%T) $2 saved" >> queue.log
}
save "[0, 1, 2, 3]" mnist-seeds0-3
save "[4, 5]" mnist-seeds4-5
save "[6, 7]" mnist-seeds6-7
