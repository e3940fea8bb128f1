#!/usr/bin/env bash
# How docs/report was made (2 CPU cores): tune → extract → rank for six tasks, then the analyses.
set -euxo pipefail
export HF_HUB_OFFLINE=1 ACTSTORE_DATA_DIR=${ACTSTORE_DATA_DIR:-../shared/data}
S=runs/minilm-report.zarr
A="--max-length 128 --batch-size 32 --random-draws 3 --percent 0,1,3,5,10,15"
actstore run data/experiments/minilm-report.toml
for task in sst2 rotten_tomatoes qnli ethics_deontology; do
    actstore suppress --store $S --task $task --limit 300 $A
done
for pair in adv_sst2:sst2 adv_qnli:qnli; do
    adv=${pair%%:*} clean=${pair##*:}
    actstore suppress --store $S --task $adv $A
    actstore suppress --store $S --task $adv --neurons-from $clean $A      # clean skill neurons, adversarial data
    actstore suppress --store $S --task $clean --neurons-from $adv --limit 300 $A
    actstore compare-adversarial --store $S --task $adv
done
actstore transfer --store $S --tasks sst2,rotten_tomatoes,qnli,ethics_deontology --max-length 128 --limit 400
actstore correlate --store $S --tasks sst2,rotten_tomatoes,qnli,ethics_deontology,adv_sst2,adv_qnli
actstore correlate --store $S --tasks sst2,rotten_tomatoes,qnli,ethics_deontology,adv_sst2,adv_qnli --normalize zscore
actstore report --store $S --out docs/report        # figures, index, neurons/: a page per top-10 skill neuron of each task
