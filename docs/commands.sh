#!/usr/bin/env bash
# How docs/report was made (2 CPU cores, about 1.5 hours in all): tuning, extraction and ranking, then the analyses.
set -euxo pipefail
export HF_HUB_OFFLINE=1 ACTSTORE_DATA_DIR=${ACTSTORE_DATA_DIR:-../shared/data}
S=runs/sst2-minilm.zarr
A="--max-length 64 --batch-size 32"
actstore tune --model all-minilm-l6-v2 --task sst2 --seeds 0,1,2 --prompt-length 20 --max-length 64 \
    --lr 1e-2 --max-steps 400 --eval-every 50 --patience 4 --store $S
actstore run data/experiments/minilm-sst2.toml --store $S
for task in sst2 rotten_tomatoes; do
    actstore suppress --store $S --task $task --percent 0,1,3,5,10,15 --random-draws 3 --limit 400 $A
done
actstore suppress --store $S --task adv_sst2 --percent 0,1,3,5,10,15 --random-draws 3 $A
actstore suppress --store $S --task adv_sst2 --neurons-from sst2 --percent 0,1,3,5,10,15 --random-draws 3 $A
actstore suppress --store $S --task sst2 --neurons-from adv_sst2 --percent 0,1,3,5,10,15 --random-draws 3 --limit 400 $A
actstore transfer --store $S --tasks sst2,rotten_tomatoes --max-length 64
actstore correlate --store $S --tasks sst2,rotten_tomatoes,adv_sst2
actstore correlate --store $S --tasks sst2,rotten_tomatoes,adv_sst2 --normalize zscore
actstore compare-adversarial --store $S --task adv_sst2
actstore eval --model all-minilm-l6-v2 --task adv_sst2 --store $S --max-length 64
actstore report --store $S --out docs/report
