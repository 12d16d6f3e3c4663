#!/usr/bin/env bash
# The emodb_2s leave-one-speaker-out runs behind the README's results table and
# docs/RESULTS_EMODB.md. One command per row; a row whose run folder already holds
# metrics.json is skipped, so an interrupted sweep continues where it stopped.
#   bash benchmarks/emodb_table.sh            # every row, one after another
#   bash benchmarks/emodb_table.sh --list     # print the commands only
# Needs the emodb_2s copy of EmoDB: CORPUS=DIR (default ../shared/data/emodb_2s). Takes hours on 2 CPU cores (run times in docs/RESULTS_EMODB.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
CORPUS=${CORPUS:-../shared/data/emodb_2s}
R=results/emodb

features=(
  "data/emodb_2s.npz|$PY extract_features.py --corpus emodb $CORPUS --out data/emodb_2s.npz"
  "data/emodb_2s_func.npz|$PY extract_features.py --corpus emodb $CORPUS --level functionals --out data/emodb_2s_func.npz"
  "data/emodb_2s_egemaps.npz|$PY extract_features.py --corpus emodb $CORPUS --feature-set egemaps --out data/emodb_2s_egemaps.npz"
)

# The experiments are recipes (recipes/*.yaml); a row adds its seed, its one change and its folder.
TANH="$PY train_attention_lstm.py --recipe recipes/emodb_2s_att_tanh_fixed30.yaml"
RELU="$PY train_attention_lstm.py --recipe recipes/emodb_2s_att_relu_fixed30.yaml"
BASIC="$PY train_attention_lstm.py --recipe recipes/emodb_2s_basic_mean_fixed30.yaml"
STATIC="$PY train_static.py --recipe recipes"
rows=(
  # the attention LSTM as published (tanh, 60 units), 3 seeds; ReLU; basic LSTM
  "$R/att-tanh-spknorm-fixed30-seed1|$TANH --seed 1 --out $R/att-tanh-spknorm-fixed30-seed1"
  "$R/att-tanh-spknorm-fixed30-seed2|$TANH --seed 2 --out $R/att-tanh-spknorm-fixed30-seed2"
  "$R/att-tanh-spknorm-fixed30-seed3|$TANH --seed 3 --out $R/att-tanh-spknorm-fixed30-seed3"
  "$R/att-relu-spknorm-fixed30-seed1|$RELU --seed 1 --out $R/att-relu-spknorm-fixed30-seed1"
  "$R/att-relu-spknorm-fixed30-seed2|$RELU --seed 2 --out $R/att-relu-spknorm-fixed30-seed2"
  "$R/att-relu-spknorm-fixed30-seed3|$RELU --seed 3 --out $R/att-relu-spknorm-fixed30-seed3"
  "$R/basic-mean-spknorm-fixed30-seed1|$BASIC --seed 1 --out $R/basic-mean-spknorm-fixed30-seed1"
  "$R/basic-mean-spknorm-fixed30-seed2|$BASIC --seed 2 --out $R/basic-mean-spknorm-fixed30-seed2"
  "$R/basic-mean-spknorm-fixed30-seed3|$BASIC --seed 3 --out $R/basic-mean-spknorm-fixed30-seed3"
  # what limits the attention LSTM: one change at a time against tanh seed 1
  "$R/att-tanh-globalnorm-fixed30-seed1|$TANH --norm global --seed 1 --out $R/att-tanh-globalnorm-fixed30-seed1"
  "$R/att-tanh-spknorm-fixed30-noclassweight-seed1|$TANH --class-weight none --seed 1 --out $R/att-tanh-spknorm-fixed30-noclassweight-seed1"
  "$R/att-tanh-spknorm-fixed30-units32-seed1|$TANH --units 32 --seed 1 --out $R/att-tanh-spknorm-fixed30-units32-seed1"
  "$R/att-tanh-spknorm-fixed30-batch64-seed1|$TANH --batch-size 64 --seed 1 --out $R/att-tanh-spknorm-fixed30-batch64-seed1"
  "$R/att-tanh-spknorm-fixed30-rd0-seed1|$TANH --recurrent-dropout 0 --seed 1 --out $R/att-tanh-spknorm-fixed30-rd0-seed1"
  "$R/att-tanh-spknorm-fixed30-egemaps-seed1|$TANH --data data/emodb_2s_egemaps.npz --seed 1 --out $R/att-tanh-spknorm-fixed30-egemaps-seed1"
  "$R/att-tanh-spknorm-seed1|$TANH --val-speakers 0.2 --epochs 50 --seed 1 --out $R/att-tanh-spknorm-seed1"
  "$R/att-tanh-spknorm-es20-seed1|$TANH --val-speakers 0.2 --epochs 80 --patience 20 --seed 1 --out $R/att-tanh-spknorm-es20-seed1"
  # static baselines on IS09 functionals (more in docs/RESULTS_EMODB.md), and on the
  # mean and std of the LSTM's own 32 frame features; global and per-speaker norm
  "$R/linear-svm-innercv|$STATIC/emodb_2s_linear_svm_innercv.yaml --out $R/linear-svm-innercv"
  "$R/linear-svm-spknorm-innercv|$STATIC/emodb_2s_linear_svm_spknorm_innercv.yaml --out $R/linear-svm-spknorm-innercv"
  "$R/rbf-svm-spknorm-innercv|$STATIC/emodb_2s_rbf_svm_spknorm_innercv.yaml --out $R/rbf-svm-spknorm-innercv"
  "$R/logreg-spknorm-innercv|$STATIC/emodb_2s_logreg_spknorm_innercv.yaml --out $R/logreg-spknorm-innercv"
  "$R/linear-svm-lldmeanstd-innercv|$STATIC/emodb_2s_linear_svm_innercv.yaml --data data/emodb_2s.npz --pool mean --out $R/linear-svm-lldmeanstd-innercv"
  "$R/linear-svm-lldmeanstd-spknorm-innercv|$STATIC/emodb_2s_linear_svm_spknorm_innercv.yaml --data data/emodb_2s.npz --pool mean --out $R/linear-svm-lldmeanstd-spknorm-innercv"
  "$R/logreg-lldmeanstd-innercv|$STATIC/emodb_2s_logreg_spknorm_innercv.yaml --norm global --data data/emodb_2s.npz --pool mean --out $R/logreg-lldmeanstd-innercv"
  "$R/mlp-seed1|$STATIC/emodb_2s_mlp.yaml --out $R/mlp-seed1"
  # ensembles of the test probabilities (mean: the fixed-epoch LSTM has no validation rows)
  "$R/ens-mean-att-svm-mlp|$PY ensemble.py $R/att-tanh-spknorm-fixed30-seed1 $R/linear-svm-innercv $R/mlp-seed1 --method mean --out $R/ens-mean-att-svm-mlp"
  "$R/ens-mean-att3seeds|$PY ensemble.py $R/att-tanh-spknorm-fixed30-seed1 $R/att-tanh-spknorm-fixed30-seed2 $R/att-tanh-spknorm-fixed30-seed3 --method mean --out $R/ens-mean-att3seeds"
  "$R/ens-mean-svmspk-att|$PY ensemble.py $R/linear-svm-spknorm-innercv $R/att-tanh-spknorm-fixed30-seed1 --method mean --out $R/ens-mean-svmspk-att"
  "$R/ens-mean-svmspk-att-basic|$PY ensemble.py $R/linear-svm-spknorm-innercv $R/att-tanh-spknorm-fixed30-seed1 $R/basic-mean-spknorm-fixed30-seed1 --method mean --out $R/ens-mean-svmspk-att-basic"
  "$R/ens-mean-static-spknorm|$PY ensemble.py $R/linear-svm-spknorm-innercv $R/rbf-svm-spknorm-innercv $R/logreg-spknorm-innercv --method mean --out $R/ens-mean-static-spknorm"
  "$R/ens-mean-static-spknorm-att-basic|$PY ensemble.py $R/linear-svm-spknorm-innercv $R/rbf-svm-spknorm-innercv $R/logreg-spknorm-innercv $R/att-tanh-spknorm-fixed30-seed1 $R/basic-mean-spknorm-fixed30-seed1 --method mean --out $R/ens-mean-static-spknorm-att-basic"
  "$R/ens-mean-static-spknorm-att-basic-seed2|$PY ensemble.py $R/linear-svm-spknorm-innercv $R/rbf-svm-spknorm-innercv $R/logreg-spknorm-innercv $R/att-tanh-spknorm-fixed30-seed2 $R/basic-mean-spknorm-fixed30-seed2 --method mean --out $R/ens-mean-static-spknorm-att-basic-seed2"
  "$R/ens-mean-static-spknorm-att-basic-seed3|$PY ensemble.py $R/linear-svm-spknorm-innercv $R/rbf-svm-spknorm-innercv $R/logreg-spknorm-innercv $R/att-tanh-spknorm-fixed30-seed3 $R/basic-mean-spknorm-fixed30-seed3 --method mean --out $R/ens-mean-static-spknorm-att-basic-seed3"
)

run_rows() {
  for row in "$@"; do
    target=${row%%|*}; command=${row#*|}
    if [[ ${LIST:-0} == 1 ]]; then echo "$command"; continue; fi
    if [[ -e $target/metrics.json || ($target == *.npz && -e $target) ]]; then echo "done: $target"; continue; fi
    echo "+ $command"
    start=$SECONDS
    $command
    echo "$target: $((SECONDS - start)) s"
  done
}

[[ ${1:-} == --list ]] && LIST=1
run_rows "${features[@]}"
run_rows "${rows[@]}"
