#!/usr/bin/env bash
# Issue 20's GPU campaign (and issue 18's GPU checks first), in one call of under 10 minutes on a lent GPU machine:
# the speed checks (scripts/gpu_check.py, bounded), then the paper runs that cost most on CPU, side by side on the
# one GPU, each from its checkpoint if it has one, until BUDGET_S seconds after the start; every training then
# checkpoints and stops (suite run --time-limit), and the checkpoints, partial results and logs are packed into $OUT
# (one tar per claim; at most 8 files come back). Unpack them in a checkout and the same `suite run` resumes there,
# on CPU or GPU: each checkpoint's segments record the device and commit that trained it. Then `suite park` and
# commit checkpoints-in-progress/ with the progress.json files, or the next machine starts them again.
#
# Before the call, here: `scripts/gpu-campaign.sh prepare [CHECKPOINTS-FOLDER...]` fills the git-ignored .gpu/ with
# what the GPU machine lacks: the Omniglot data, a shallow .git (the commit, for provenance), and the paper runs'
# checkpoints in progress from the folders named (a background campaign's, say); parked ones (checkpoints-in-progress/,
# in git) travel with the working tree and the runner resumes from them.
# The call (device tool): carry [".gpu"]; command: OUT=$OUT BUDGET_S=470 bash scripts/gpu-campaign.sh (timeout_s 560;
# the machine's start costs a minute or two of the 15). A second call on the still-warm machine continues from the
# checkpoints left there: CHECKS=0 skips the checks; nothing needs carrying again. PREFETCH=N gives each training N
# processes that draw its meta-batches ahead (suite run --prefetch; the same numbers): worth it when few trainings
# share the GPU, as the 16 here already keep the 16 cores busy launching kernels. CUDA_GRAPH=1 captures each MAML,
# first-order MAML and ANIL step as a CUDA graph (suite run --cuda-graph): use it once gpu-check.md's captured-step
# table shows the captured trainings' parameters close to the eager ones'.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = prepare ]; then
  shift
  rm -rf .gpu /tmp/gpu-campaign-clone && mkdir -p .gpu/datasets .gpu/checkpoints
  cp -rL datasets/omniglot .gpu/datasets/
  # the commit's trees without its blobs (enough for `git status` to compare the copy's files; results/ alone is
  # near the 64 MiB a call carries)
  git config uploadpack.allowFilter true
  git clone -q --no-checkout --depth 1 --filter=blob:none --no-local "file://$PWD" /tmp/gpu-campaign-clone &&
    git -C /tmp/gpu-campaign-clone read-tree HEAD && mv /tmp/gpu-campaign-clone/.git .gpu/git
  for from in "$@"; do
    (cd "$from/.." && find checkpoints -path '*/paper/*' -name latest.pt -exec cp --parents {} "$OLDPWD/.gpu/" \;)
  done
  du -sh .gpu; find .gpu/checkpoints -name '*.pt'
  exit
fi
began=$(date +%s)
budget=${BUDGET_S:-530}
out=${OUT:?set OUT to the folder that comes back}
mkdir -p "$out/logs"
device=${DEVICE:-cuda}  # DEVICE=cpu tries the script out on a machine without a GPU (and skips the checks)
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 SUITE_DATA=$PWD/.gpu/datasets
mkdir -p checkpoints && cp -rn .gpu/checkpoints/. checkpoints/  # newer ones from an earlier call stay
[ -d .gpu/git ] && export GIT_DIR=$PWD/.gpu/git GIT_WORK_TREE=$PWD  # provenance: the commit this copy is
(nvidia-smi; python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"; git rev-parse HEAD;
 git status --porcelain -- suite pyproject.toml) > "$out/logs/machine.txt" 2>&1

# 1. The speed issue's checks: float64 meta-gradients of every path against the CPU loop (and suite bench, with
# BENCH_SECONDS > 0).
[ "${CHECKS:-1}" = 1 ] && [ "$device" = cuda ] && BENCH_SECONDS=${BENCH_SECONDS:-0} BENCH_ITERATIONS=${BENCH_ITERATIONS:-10} timeout 150 \
  python3 scripts/gpu_check.py > "$out/logs/gpu-check.log" 2>&1
[ -f "$out/gpu-check.md" ] && mv "$out/gpu-check.md" "$out/logs/"

# What one training alone costs on this GPU (each claim's runs timed for a few iterations on the runner's path,
# in one process: suite plan), before they share it.
[ "${CHECKS:-1}" = 1 ] && [ "$device" = cuda ] && timeout "${PLAN_SECONDS:-120}" python3 -m suite.cli plan \
  --claim omniglot-maml --claim anil-omniglot --claim omniglot-reptile --claim freeze-layer-omniglot --device cuda \
  --iterations 5 --warmup 2 > "$out/logs/plan-cuda.md" 2>&1

# 2. The campaign: the runs that cost most on this project's CPU (docs/cost-cpu.md), one `suite run` per claim.
# On 2026-11-30, 16 trainings in 16 processes shared the GPU by time-slicing at ~93 % utilisation and each ran
# about as fast as on this project's 2-core CPU (docs/gpu/2026-11-30-h200.md). NVIDIA's MPS lets the processes'
# kernels run at once: it is started when it works here (MPS=0 skips it).
if [ "$device" = cuda ] && [ "${MPS:-1}" = 1 ] && command -v nvidia-cuda-mps-control >/dev/null; then
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
  mkdir -p $CUDA_MPS_PIPE_DIRECTORY $CUDA_MPS_LOG_DIRECTORY
  if nvidia-cuda-mps-control -d && timeout 60 python3 -c "import torch; torch.ones(1, device='cuda').sum().item()"
  then echo "MPS on" >> "$out/logs/machine.txt"
  else echo quit | nvidia-cuda-mps-control; echo "MPS failed: off" >> "$out/logs/machine.txt"; fi
fi
minutes=$(python3 -c "print(max(0.5, ($budget - ($(date +%s) - $began)) / 60))")
campaign() {  # claim, jobs, runs...
  local claim=$1 jobs=$2; shift 2
  python3 -m suite.cli run --claim "$claim" --profile paper --device "$device" --jobs "$jobs" --time-limit "$minutes" \
    --prefetch "${PREFETCH:-0}" $([ "${CUDA_GRAPH:-0}" = 1 ] && echo --cuda-graph) --no-sensitivity --no-progress \
    $(printf -- '--run %s ' "$@") \
    > "$out/logs/$claim.log" 2>&1 &
}
campaign omniglot-maml 4 n5-k1 n5-k5 n20-k1 n20-k5
campaign anil-omniglot 6 maml-n20-k5 maml-n20-k1
campaign omniglot-reptile 4 n20-k1 n20-k5 fomaml-n20-k1 fomaml-n20-k5
campaign freeze-layer-omniglot 1 n5-k5
campaign imaml-omniglot 1 gd-n5-k1
(while sleep 30; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; done) \
  > "$out/logs/utilization.txt" 2>&1 &
watch=$!
wait $(jobs -p | grep -v "^$watch$")
kill $watch 2>/dev/null

# 3. Pack: what each training reached, then one tar per claim's checkpoints, and the paper results (with the
#    trained models of finished runs) and logs.
python3 - 2>&1 <<'PY' | tee "$out/logs/progress.txt"
import glob, torch
for f in sorted(glob.glob("checkpoints/*/paper/*/*/*/*.pt")):
    c = torch.load(f, map_location="cpu", weights_only=False)
    seg = c.get("segments") or c.get("training", {}).get("segments")
    print(f, c.get("iteration", "final"), [(s["device"], s["from_iteration"]) for s in seg or []])
PY
claims="omniglot-maml anil-omniglot omniglot-reptile freeze-layer-omniglot imaml-omniglot"
for claim in $claims; do
  [ -d "checkpoints/$claim/paper" ] && tar cf "$out/checkpoints-$claim.tar" "checkpoints/$claim/paper"
done
tar cf "$out/results-and-logs.tar" -C "$out" logs
for claim in $claims; do
  [ -d "results/$claim/paper" ] && tar rf "$out/results-and-logs.tar" "results/$claim/paper"
  [ -d "trained-models/$claim" ] && tar rf "$out/results-and-logs.tar" "trained-models/$claim"  # finished: kept
done
rm -rf "$out/logs"
echo "done in $(( $(date +%s) - began )) s"; ls -la "$out"
