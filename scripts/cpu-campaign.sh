#!/usr/bin/env bash
# Issue 20's CPU campaign: paper runs that take hours or days, trained in the background from a frozen checkout so
# that work on main cannot change the code under them, resumed across sessions and machines from parked checkpoints.
#
#   scripts/cpu-campaign.sh start DIR MINUTES CLAIM [RUN...]   clone this checkout's HEAD into DIR (once; the clone
#       stays frozen at that commit) and train the claim's paper runs there in the background: --jobs one per run up
#       to the cores (splitting the threads), nice 10, --time-limit MINUTES (every training checkpoints and stops
#       then; the same command resumes it to the numbers of an uninterrupted run). Runs parked in
#       checkpoints-in-progress/ (in git, so in the clone) resume from their parked checkpoint. Log: DIR/campaign.log.
#       VARIANT=NAME trains and measures the claim's sensitivity variant NAME instead (`suite sensitivity --train`).
#       JOBS=N trains N of its runs' seeds at once instead (one run of three seeds on two cores: JOBS=2).
#   scripts/cpu-campaign.sh land DIR CLAIM...   once DIR's `suite run` has stopped: park its trainings in progress
#       (suite park), then bring what the campaign changed of the claim's paper results, curves, trained models,
#       parked checkpoints and metrics (what it wrote, what it removed) into this checkout, and regenerate
#       results/REPORT.md. Commit them naming the commit DIR trained at (printed). Campaigns of one claim in several
#       clones land in any order (tests/test_campaign.py).
#
# A new machine starts again with `start` into a new DIR: the parked checkpoints landed on main carry the work over.
# PROFILE=smoke (for both commands) tries the script out in a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
main=$PWD
usage() { sed -n '5,18p' "$0" >&2; exit 2; }
profile=${PROFILE:-paper}  # PROFILE=smoke tries the script out in minutes
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || usage
shift 2

running() { [ -f "$dir/campaign.pid" ] && kill -0 "$(cat "$dir/campaign.pid")" 2>/dev/null; }

case "$cmd" in
start)
  minutes=${1:?MINUTES}; claim=${2:?CLAIM}; shift 2
  if running; then echo "a campaign is still running in $dir (pid $(cat "$dir/campaign.pid"))" >&2; exit 1; fi
  [ -d "$dir/.git" ] || git clone -q "$main" "$dir"
  mkdir -p "$dir/datasets"
  for d in "$main"/datasets/*/; do [ -e "$dir/datasets/$(basename "$d")" ] || cp -rL "$d" "$dir/datasets/"; done
  runs=$#; cores=$(nproc); jobs=${JOBS:-$(( runs > 0 && runs < cores ? runs : cores ))}
  cd "$dir"
  echo "$(date -u +%FT%TZ) start at $(git rev-parse --short HEAD): $claim ${VARIANT:+variant $VARIANT }${*:-(all runs)}," \
    "$minutes min" >> campaign.log
  if [ -n "${VARIANT:-}" ]; then what=(sensitivity --variant "$VARIANT" --train); else what=(run); fi
  # The runner splits the threads among the --jobs workers; passive OpenMP waits, as two spinning
  # threads on a busy 2-core machine run several times slower than one (issue 18's measurement).
  # The clone's own code (python -m from DIR, not the `suite` on PATH, which may be an editable install of main).
  OMP_WAIT_POLICY=PASSIVE PYTHONPATH=$PWD setsid nohup nice -n 10 python3 -m suite.cli "${what[@]}" --claim "$claim" \
    --profile "$profile" --jobs "$jobs" --time-limit "$minutes" --no-progress $(printf -- '--run %s ' "$@") \
    >> campaign.log 2>&1 < /dev/null &
  echo $! > campaign.pid
  echo "started in $dir (pid $!, commit $(git rev-parse --short HEAD)); log: $dir/campaign.log"
  ;;
land)
  [ $# -gt 0 ] || usage
  if running; then
    echo "the campaign in $dir is still running (pid $(cat "$dir/campaign.pid")): land it when it has stopped" >&2
    exit 1
  fi
  cd "$dir"
  for claim in "$@"; do
    # runs and variants that never began training leave only their config.json: not worth landing
    find "results/$claim/$profile" -name config.json 2>/dev/null | while read -r config; do
      run=$(dirname "$config")
      if [ "$(ls -A "$run")" = config.json ]; then
        rm -r "$run"; rmdir -p --ignore-fail-on-non-empty "$(dirname "$run")"
      fi
    done
    PYTHONPATH=$PWD python3 -m suite.cli park --claim "$claim"
    # What this campaign changed since its clone was made, and nothing else: each file it wrote lands on main, each
    # it removed (a finished training's progress.json and parked checkpoint) goes from main. Campaigns of one claim
    # in several clones then land in any order: none carries its stale copies of the others' trainings.
    git status --porcelain -z -uall --no-renames -- "results/$claim/$profile" "results/plots/$claim/$profile" \
        "trained-models/$claim" "checkpoints-in-progress/$claim" "results/metrics/$claim.$profile.json" |
      while IFS= read -r -d '' entry; do
        path=${entry:3}
        if [[ ${entry:0:2} == *D* ]]; then rm -f "$main/$path"
        else mkdir -p "$main/$(dirname "$path")" && cp -p "$path" "$main/$path"; fi
      done
  done
  trained=$(git rev-parse --short HEAD)
  cd "$main"
  suite report --output results/REPORT.md --figures results/figures > /dev/null
  git status --short
  echo "landed from $dir, trained at commit $trained: commit the above naming it"
  ;;
*) usage ;;
esac
