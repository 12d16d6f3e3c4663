#!/bin/bash
# Run the commands of a queue file one at a time, pinned to core 1 with one TensorFlow thread.
# Lines are "NAME<TAB>FLAGS"; lines may be appended while it runs; a run whose folder holds
# metrics.json is skipped. Logs go to logs/NAME.log, wall times to logs/times.tsv.
#   nohup bash benchmarks/run_queue.sh benchmarks/queue.tsv results/emodb-variants > logs/queue.log 2>&1 &
QUEUE=$1
OUT=$2
PY=${PY:-/work/main/.venv/bin/python}
mkdir -p logs "$OUT"
done_names=" "
while true; do
  next=""
  while IFS=$'\t' read -r name flags; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    [[ "$done_names" == *" $name "* ]] && continue
    next="$name"; nextflags="$flags"; break
  done < "$QUEUE"
  [[ -z "$next" ]] && { echo "queue empty $(date +%T)"; break; }
  done_names="$done_names$next "
  if [[ -f "$OUT/$next/metrics.json" ]]; then echo "skip $next"; continue; fi
  echo "start $next $(date +%T): $nextflags"
  start=$(date +%s)
  taskset -c 1 env TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 $PY train_attention_lstm.py \
    --data data/emodb_2s.npz --cv loso $nextflags --quiet --out "$OUT/$next" > "logs/$next.log" 2>&1
  rc=$?
  end=$(date +%s)
  printf "%s\t%s\t%s\t%s\n" "$next" "$rc" "$((end - start))" "$nextflags" >> logs/times.tsv
  echo "end $next rc=$rc $(( (end - start) / 60 )) min"
done
