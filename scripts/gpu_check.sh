#!/usr/bin/env bash
# The one GPU check (issue 12): every gpu-marked test, gradcheck of every op, every benchmark mode, the
# default training run and one QAT run with integer conversion, on one GPU, in a few minutes.
# Writes docs/benchmarks-gpu.md (the device named in it) and prints the key lines; the full log goes
# to $LOG. Runs from a plain checkout (PYTHONPATH, no install): the GPU machine has no network.
#
#   bash scripts/gpu_check.sh                 # on a GPU machine
#   DEVICE=cpu BENCH_REPEAT=1 bash scripts/gpu_check.sh   # a dry run of the script itself
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
DEVICE=${DEVICE:-cuda}
LOG=${LOG:-${OUT:-/tmp}/gpu_check.log}
PAGE=${PAGE:-${OUT:-docs}/benchmarks-gpu.md}  # under $OUT on the device tool, so that it comes back
BENCH_REPEAT=${BENCH_REPEAT:-5}
PY=${PYTHON:-python3}  # the GPU image has python3 only
MQ=("$PY" -m minigrad_q)
status=0
step() {  # step NAME TIMEOUT_S COMMAND...: run, log, print the last lines, remember a failure
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  echo "== $name" | tee -a "$LOG"
  timeout "$limit" "$@" >>"$LOG" 2>&1
  local code=$?
  echo "   exit $code after $((SECONDS - start)) s" | tee -a "$LOG"
  [ "$code" -eq 0 ] || status=1
}
: >"$LOG"
"$PY" - <<'PY' | tee -a "$LOG"
import minigrad_q as mq
from minigrad_q import backend, bench
print("minigrad_q", mq.__version__, backend.versions(), "gpus:", bench.gpu_report())
PY
PARALLEL=()  # pytest-xdist where installed (the GPU image has it): the gpu tests in a minute, not four
"$PY" -c "import xdist" 2>/dev/null && PARALLEL=(-n 8)
step "pytest -m gpu" 240 "$PY" -m pytest -m gpu -q -p no:cacheprovider "${PARALLEL[@]}" -rfE --tb=short
grep -E "passed|failed|skipped" "$LOG" | tail -1
step "gradcheck --device $DEVICE" 60 "${MQ[@]}" gradcheck --device "$DEVICE"
grep -E "^[0-9]+ ops, " "$LOG" | tail -1
step "bench --device $DEVICE" 180 "${MQ[@]}" bench --device "$DEVICE" --overhead --conv --lenet --toycnn --quant \
  --repeat "$BENCH_REPEAT" --markdown "$PAGE" --json "${PAGE%.md}.json"
grep -E "^(tiny|1M|N64|N128|lenet5|toycnn|fake_quant|dsq|quant_noise|lsq|pact) " "$LOG" | tail -12
step "bench --device $DEVICE --profile" 60 "${MQ[@]}" bench --device "$DEVICE" --profile
tail -14 "$LOG"
step "train --device $DEVICE" 60 "${MQ[@]}" train --device "$DEVICE" --no-progress
grep -E "^done: " "$LOG" | tail -1
step "train --device $DEVICE --quant dsq --convert" 90 "${MQ[@]}" train --device "$DEVICE" --quant dsq --wbits 4 --abits 4 \
  --convert --no-progress
grep -E "^(done: |integer model: )" "$LOG" | tail -2
echo "gpu_check: $([ $status -eq 0 ] && echo all steps passed || echo SOME STEPS FAILED); log in $LOG; page $PAGE"
exit $status
