#!/usr/bin/env bash
# The GPU checks, in one go on a machine with CUDA and PyTorch but no internet (and no snakemake):
#   1. tests/test_cuda.py (no sync in the training loop, graph replay == eager, GPU numbers == CPU numbers);
#   2. benchmarks/ep_speed.py on the GPU;
#   3. the grid of both protocols (run_protocols: 2 x 3 datasets x 5 variants x 10 seeds x 20 epochs, 300 runs),
#      each (protocol, dataset)'s 50 runs as one stacked network, timed; per-run metrics.csv and summary.json are
#      packed into $OUT/grid.tar.gz.
# Needs the dataset archives in torchvision layout under $MIRROR (default device_data/datasets) and, where
# jsonschema is missing, its wheels in .whl/. Usage: OUT=gpu_out bash benchmarks/gpu_check.sh [grid seconds]
set -uo pipefail
OUT=$(realpath -m "${OUT:-gpu_out}")
MIRROR=${MIRROR:-device_data/datasets}
DEVICE=${DEVICE:-cuda}                      # DEVICE=cpu BENCH_RUNS=1 runs the same steps on a CPU (a dry run)
BENCH_RUNS=${BENCH_RUNS:-1 10 50 150}
GRID_SECONDS=${1:-420}
mkdir -p "$OUT" device_data
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if ! python3 -c "import jsonschema" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl &&
        export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import torch; print(torch.__version__)"; } \
    2>&1 | tee "$OUT/device.txt"

python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_model.py 2>&1 | tee "$OUT/tests.log"
python3 benchmarks/ep_speed.py --device "$DEVICE" --runs $BENCH_RUNS --batches 200 --eval-batch-size 300000 2>&1 | tee "$OUT/benchmark.log"

cat > device_data/grid.yaml <<EOF
data: {root: device_data/prepared, mirror: $MIRROR}
training: {device: $DEVICE}
EOF
CONFIGS=(--config config/config.yaml --config config/offline.yaml --config config/gpu.yaml --config device_data/grid.yaml)
start=$(date +%s)
for protocol in lab calibrated; do
    for dataset in mnist fashion_mnist kmnist; do
        left=$((GRID_SECONDS - ($(date +%s) - start)))
        [ "$left" -gt 0 ] || { echo "$protocol $dataset: skipped, no time left" | tee -a "$OUT/grid_times.txt"; continue; }
        t0=$(date +%s)
        timeout "$left" python3 -m htsep.cli train "${CONFIGS[@]}" --protocol "$protocol" --dataset "$dataset" \
            --runs-dir device_data/runs > "$OUT/grid_${protocol}_$dataset.log" 2>&1
        echo "$protocol $dataset: exit $? after $(($(date +%s) - t0)) s" | tee -a "$OUT/grid_times.txt"
    done
done
echo "grid: $(($(date +%s) - start)) s" | tee -a "$OUT/grid_times.txt"
(cd device_data && tar czf "$OUT/grid.tar.gz" runs/*/*/*/*/metrics.csv runs/*/*/*/*/summary.json)
tail -n 3 "$OUT"/grid_*.log
