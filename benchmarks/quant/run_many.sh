#!/usr/bin/env bash
# run_many.sh FOLDER LOG VARIANT... : each variant in its own process
folder=$1; log=$2; shift 2
for v in "$@"; do
  PYTHONPATH=$PWD nice python benchmarks/quant/run_variant.py "$folder" "$v" 2>/tmp/quant/last_err.log | grep RESULT >> "$log" || { echo "FAILED $v" >> "$log"; tail -3 /tmp/quant/last_err.log >> "$log"; }
done
echo DONE >> "$log"
