#!/bin/bash
# Trains depth seeds 6-7, then 8-9 (the extension declared in config before these runs); each shard copied out.
cd /tmp/depthC
export PYTHONPATH=/tmp/depthC/src
OUT=/tmp/depthC/saved; mkdir -p $OUT
save() {  # the shard of seeds $1 (a yaml list) under name $2
  printf 'depth: {seeds: %s}\n' "$1" > batch.yaml
  echo "$(date -u +%T) $2 started" >> queue.log
  /usr/bin/time -v .venv/bin/snakemake results/depth/shard.runs.csv --cores 2 --configfile config/config.yaml \
    config/offline.yaml campaign.yaml batch.yaml >> "snake-$2.log" 2>&1
  cp results/depth/shard.runs.csv "$OUT/$2.runs.csv"; cp results/depth/shard.epochs.csv "$OUT/$2.epochs.csv"
  echo "$(date -u +%T) $2 saved" >> queue.log
}
save "[6, 7]" mnist-seeds6-7
save "[8, 9]" mnist-seeds8-9
