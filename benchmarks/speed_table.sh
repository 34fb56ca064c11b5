#!/usr/bin/env bash
# The speed table of docs/speed.md, to run on a QUIET machine.
#
#   bash benchmarks/speed_table.sh [OUT_DIR]          # default OUT_DIR=/tmp/kakudai_speed
#   REPEAT=7 bash benchmarks/speed_table.sh            # more timed runs per model
#   QUICK=1 bash benchmarks/speed_table.sh             # small frames, 2 runs: checks the script only
#
# 1. Main table: every shipped model (plus ksr and ksr-fast, with random weights
#    when not shipped: speed does not depend on the weights) and bicubic, at x2,
#    x3 and x4 for a 1920x1080 output (inputs 960x540, 640x360, 480x270), with
#    the default inference path (channels-last, glibc heap kept, all threads).
# 2. Ablations of each fast-path choice on the flagship (ksr x3, 640x360 -> 1920x1080):
#    memory format, malloc, threads, onnxruntime, bf16, torch.compile.
# Writes one JSON per run and tables.md in OUT_DIR; prints the tables at the end.
# Needs the package's dependencies and the onnx extra (pip install '.[onnx]').
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT="${1:-/tmp/kakudai_speed}"
REPEAT="${REPEAT:-5}"
mkdir -p "$OUT"
export KAKUDAI_CACHE="${KAKUDAI_CACHE:-$OUT/cache}"   # exported ONNX files land here
bench() { python -m kakudai bench --repeat "$REPEAT" --json "$@"; }

if [[ -n "${QUICK:-}" ]]; then
  REPEAT=2
  declare -A SIZE=([2]=96x54 [3]=64x36 [4]=48x27)
  FLAG_SIZE=64x36
else
  declare -A SIZE=([2]=960x540 [3]=640x360 [4]=480x270)
  FLAG_SIZE=640x360
fi

load="$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?')"
echo "load average before: $load (should be well below 1 for a clean measurement)"

# ---------------------------------------------------------------- 1. main table
for s in 2 3 4; do
  # Shipped models serving this scale, plus the flagship pair; bicubic first.
  models="$(python - "$s" <<'EOF'
import sys
from kakudai.checkpoint import shipped_weights
s = float(sys.argv[1])
names = ["bicubic"]
for name, scales in sorted(shipped_weights().items()):
    if (not scales or s in scales) and name not in names:
        names.append(name)
for name in ("ksr", "ksr-fast"):
    if name not in names:
        names.append(name)
print(" ".join(names))
EOF
)"
  echo "== x$s: $models (${SIZE[$s]})"
  bench --model $models --scale "$s" --size "${SIZE[$s]}" > "$OUT/main_x$s.json"
done

# ---------------------------------------------------------------- 2. ablations (ksr x3)
ab() {  # ab NAME MODEL ARGS...: one variant of a flagship model at x3
  local name="$1" model="$2"; shift 2
  echo "== ablation $name: $model $*"
  if ! bench --model "$model" --scale 3 --size "$FLAG_SIZE" "$@" > "$OUT/ab_$name.json" 2> "$OUT/ab_$name.err"; then
    echo "   failed (see $OUT/ab_$name.err)"; rm -f "$OUT/ab_$name.json"
  fi
}
ab ksr_default ksr
ab ksr_contiguous ksr --memory-format contiguous
ab ksr_malloc_default ksr --malloc default
ab ksr_threads_1 ksr --threads 1
ab ksr_onnxruntime ksr --backend onnxruntime
ab ksr_bf16 ksr --precision bf16
ab ksr_compile ksr --compile
ab fast_default ksr-fast
ab fast_onnxruntime ksr-fast --backend onnxruntime
ab fast_bf16 ksr-fast --precision bf16

# ---------------------------------------------------------------- tables
python - "$OUT" <<'EOF' | tee "$OUT/tables.md"
import json, sys
from pathlib import Path
from kakudai.bench import format_markdown
out = Path(sys.argv[1])
load = lambda f: json.loads(f.read_text().strip().splitlines()[-1])
main = [load(out / f"main_x{s}.json") for s in (2, 3, 4) if (out / f"main_x{s}.json").exists()]
m = main[0]["machine"]
print(f"Machine: {m['cpu']}, {m['cpus_available']} usable CPUs, torch {m['torch']}, "
      f"{m['threads']} threads, load avg {m['load_avg_1min']}\n")
print("### Every model, default path\n")
print(format_markdown(main))
order = ["ksr_default", "ksr_contiguous", "ksr_malloc_default", "ksr_threads_1", "ksr_onnxruntime",
         "ksr_bf16", "ksr_compile", "fast_default", "fast_onnxruntime", "fast_bf16"]
abl = [n for n in order if (out / f"ab_{n}.json").exists()]
if abl:
    print("\n### Fast-path ablations (one change each from the default)\n")
    print(format_markdown([load(out / f"ab_{n}.json") for n in abl], labels=abl))
EOF
echo "load average after: $(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?')"
echo "tables: $OUT/tables.md"
