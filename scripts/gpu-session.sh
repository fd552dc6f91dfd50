#!/usr/bin/env bash
# Everything a short GPU lease is for, in one pass: the host check (gpu-check.sh), the benchmark on the GPU, and two
# generator training runs on the GPU (resumed from a CPU checkpoint, and from scratch) whose snapshots are ranked by
# the quality gates. Only built binaries travel; the machine's own PyTorch libraries are used.
#
#   scripts/gpu-kit.sh                      # here: copies binaries, plugins, mixture and checkpoint into .gpu/
#   LD_LIBRARY_PATH=.../torch/lib scripts/gpu-session.sh .gpu "$OUT"    # there
#
# Environment: DEVICE (cuda), DEADLINE (seconds the whole pass may take, 540: training gets what the checks before it
# leave, less 100 s for the gates, at most TRAIN_MINUTES, 4), SNAPSHOT_EVERY (2000), GATES_COUNT (10000), BENCH_ARGS
# (extra subspace-bench flags), RUNS (the training runs: "resume scratch"), SKIP_CHECKS (1: training only).
set -uo pipefail
cd "$(dirname "$0")/.."
kit=$1
out=$2
device=${DEVICE:-cuda}
deadline=${DEADLINE:-540}
every=${SNAPSHOT_EVERY:-2000}
bin=$kit/bin
mkdir -p "$out"
exec > >(tee "$out/session.log") 2>&1
t0=$(date +%s)
stamp() { echo "== [$(($(date +%s) - t0)) s] $*"; }

stamp machine
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
echo "cpus: $(nproc)"

runs=${RUNS:-resume scratch}
# Idle OpenMP threads sleep rather than spin: they would starve the renderer threads.
export OMP_WAIT_POLICY=PASSIVE
if [ "${SKIP_CHECKS:-0}" != 1 ]; then
    stamp "host check"
    OUT=/tmp timeout 90 scripts/gpu-check.sh "$bin" || echo "gpu-check failed or timed out: $?"

    stamp "benchmark on $device"
    BENCH_MIXTURE=$kit/mixture timeout 170 "$bin/subspace-bench" --device "$device" ${BENCH_ARGS:-} \
        >"$out/bench-$device.md" || echo "bench failed or timed out: $?"
    cat "$out/bench-$device.md"
fi

minutes=$(python3 -c "print(round(max(0.2, min(${TRAIN_MINUTES:-4}, ($deadline - $(($(date +%s) - t0)) - 100) / 60)), 2))")
stamp "generator training, $minutes min each, runs side by side: $runs"
work=/tmp/gan
rm -rf "$work" && mkdir -p "$work/resume/work" "$work/resume/out" "$work/scratch/work" "$work/scratch/out"
cp "$kit"/gan-1/{g,g_ema,d}.safetensors "$kit/gan-1/state.json" "$work/resume/work/"
cp "${LOSSES:-models/default/generator-losses.csv}" "$work/resume/out/"
train() { # name, extra flags...
    local name=$1
    shift
    "$bin/world" train-generator --seed 1 --minutes "$minutes" --device "$device" --render-threads "${RENDER_THREADS:-6}" \
        --snapshot-every "$every" --out "$work/$name/out" --work "$work/$name/work" "$@" >"$work/$name/train.log" 2>&1
    echo "$name: exit $?"
}
pids=()
for name in $runs; do
    if [ "$name" = resume ]; then train resume --resume & else train "$name" & fi
    pids+=($!)
done
wait "${pids[@]}" # not a bare wait: that would also wait for the tee above
for name in $runs; do grep -E "resuming|parameters|done:|error" "$work/$name/train.log"; tail -n 2 "$work/$name/train.log"; done

stamp "export and gate every snapshot"
gate() { # checkpoint run step: export the snapshot and measure its gates
    local d=$work/$2/snap/$3
    mkdir -p "$d"
    cp models/default/classifier-*.pt models/default/classifier-*.json "$d/"
    cp "$1" "$d/g_ema.safetensors"
    "$bin/world" export-generator --checkpoint "$1" --seed 1 --steps "$3" --minutes 0 --out "$d" >/dev/null \
        && "$bin/world" gates --models "$d" --device "$device" --count "${GATES_COUNT:-10000}" --save "$d/gates.json" \
            >"$d/gates.txt" 2>&1
    echo "$2 step $3: gates exit $?"
}
export -f gate
export work bin device
for name in $runs; do
    for s in "$work/$name"/work/snapshots/g_ema-*.safetensors; do
        [ -e "$s" ] && echo "$s $name $(basename "$s" .safetensors | sed 's/g_ema-0*//')"
    done
    echo "$work/$name/work/g_ema.safetensors $name $(grep -o '"step": *[0-9]*' "$work/$name/work/state.json" | grep -o '[0-9]*$')"
done | xargs -P 6 -L 1 bash -c 'gate "$@"' _
python3 - "$work" "$out" $runs <<'EOF'
import json, pathlib, sys, tarfile
work, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for run in sys.argv[3:]:
    rows = []
    for g in sorted((work / run / "snap").glob("*/gates.json"), key=lambda p: int(p.parent.name)):
        r = json.loads(g.read_text())
        # Margin of the worst gate (positive: every gate passes).
        margin = min(min(x["confident"] - 0.9, x["agreement"] - 0.9, 0.1 - x["tvd"]) for x in r["generated"])
        rows.append((margin, g.parent, r))
        cells = " ".join(f'{x["group"]}:{x["confident"]:.3f}/{x["agreement"]:.3f}/{x["tvd"]:.3f}' for x in r["generated"])
        print(f"{run} step {g.parent.name:>6} margin {margin:+.4f} pass {r['pass']}  (confident/agreement/tvd) {cells}")
    if not rows:
        continue
    best = max(rows, key=lambda t: t[0])
    print(f"{run}: best snapshot step {best[1].name} (margin {best[0]:+.4f})")
    with tarfile.open(out / f"{run}-best.tar", "w") as t:
        for f in ("generator.pt", "generator.json", "g_ema.safetensors", "gates.json", "gates.txt"):
            t.add(best[1] / f, arcname=f"{run}-{best[1].name}/{f}")
    with tarfile.open(out / f"{run}-checkpoint.tar", "w") as t:
        for f in ("g.safetensors", "g_ema.safetensors", "d.safetensors", "state.json"):
            t.add(work / run / "work" / f, arcname=f"{run}/{f}")
        t.add(work / run / "out" / "generator-losses.csv", arcname=f"{run}/generator-losses.csv")
        t.add(work / run / "train.log", arcname=f"{run}/train.log")
        sheets = sorted((work / run / "work").glob("sheet-*.png"))
        if sheets:
            t.add(sheets[-1], arcname=f"{run}/{sheets[-1].name}")
EOF
stamp done
