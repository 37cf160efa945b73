#!/usr/bin/env bash
# End-to-end check of the SLURM profile on the single-node test cluster:
# the test study (config/test.yaml) up to the grid tables of the lab protocol and the backprop reference
# (results/tables/<protocol>/runs.parquet) with --workflow-profile profiles/slurm, then
#   (a) every train job ran inside a SLURM job (grouped: fewer submissions than
#       train jobs) and every SLURM job of the run completed with exit status 0
#       according to slurmctld;
#   (b) runs.csv and epochs.csv equal those of a local run (timings excluded).
#
#   sudo tests/cluster/slurm_e2e.sh [--local-study DIR]
#
# --local-study DIR (or HTSEP_LOCAL_STUDY=DIR): a finished local run of the test
#   study to compare with (e.g. the pytest `test_study` workdir); without it the
#   same target is run locally (default profile, --cores 2) in a second temp copy.
# Env knobs:
#   HTSEP_E2E_TIMEOUT  seconds for the SLURM run of snakemake (default 900)
#   HTSEP_E2E_KEEP=1   keep the temp workdirs (always kept on failure)
#   HTSEP_BIN          dir with python/snakemake (default <repo>/.venv/bin)
#   SLURM_STATE, SLURM_CONF_DIR  as for tests/cluster/slurm_cluster.sh
# The cluster is brought up when it is not running and, in that case only, down
# again on exit. Needs root unless the cluster is already up.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLUSTER="$REPO/tests/cluster/slurm_cluster.sh"
BIN="${HTSEP_BIN:-$REPO/.venv/bin}"
TIMEOUT="${HTSEP_E2E_TIMEOUT:-900}"
STATE="${SLURM_STATE:-/tmp/htsep-slurm}"
CTLD_LOG="$STATE/log/slurmctld.log"
export SLURM_CONF="${SLURM_CONF:-${SLURM_CONF_DIR:-/etc/slurm}/slurm.conf}"
export PATH="$BIN:$PATH"   # the job scripts call python/snakemake of this venv
WORKFLOW_FILES=(Snakefile workflow config profiles paper environment.yml)
# one EP protocol (rule train) and the backprop reference (rule train_backprop): 12 train jobs, packed 6 to a
# submission so that the two submissions run side by side on the test cluster's 2 CPUs
PROTOCOLS=(lab backprop)
TARGETS=("${PROTOCOLS[@]/#/results/tables/}")
TARGETS=("${TARGETS[@]/%//runs.parquet}")
GROUPING=(--group-components train=6)

LOCAL_STUDY="${HTSEP_LOCAL_STUDY:-}"
while (($#)); do
  case "$1" in
    --local-study) LOCAL_STUDY="${2:?--local-study needs a directory}"; shift 2 ;;
    --local-study=*) LOCAL_STUDY="${1#*=}"; shift ;;
    -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

log() { echo "[slurm_e2e] $*" >&2; }

T0=$SECONDS
STARTED_CLUSTER=0
OK=0
WORK=""
LOCAL_WORK=""
SM_OUT=""
CTLD_OFFSET=0
DIAG=0 # cluster diagnostics on failure, once the cluster is involved
SUBMITTED_IDS=()

diagnostics() {
  log "================ diagnostics ================"
  log "--- squeue --states=all"
  squeue --states=all -o '%.8i %.28j %.10T %.10M %.6D %R' 2>&1 || true
  if [[ -r "$CTLD_LOG" ]]; then
    log "--- tail -n 40 $CTLD_LOG"
    tail -n 40 "$CTLD_LOG" || true
  fi
  if [[ -n "$SM_OUT" && -f "$SM_OUT" ]]; then
    log "--- tail -n 60 $SM_OUT (snakemake output)"
    tail -n 60 "$SM_OUT" || true
  fi
  if [[ -n "$WORK" && -d "$WORK/.snakemake/slurm_logs" ]]; then
    local f
    while IFS= read -r f; do
      log "--- tail -n 25 $f"
      tail -n 25 "$f" || true
    done < <(find "$WORK/.snakemake/slurm_logs" -name '*.log' -newer "$WORK/Snakefile" | sort | tail -n 4)
  fi
  true
} >&2

fail() {
  log "FAIL: $*"
  if ((DIAG)); then diagnostics; fi
  exit 1
}

# pids of processes still running from the SLURM workdir (a cancelled job's nested snakemake
# can survive: proctrack/linuxproc loses processes once they are re-parented to init)
workdir_pids() {
  local d
  for d in /proc/[0-9]*; do
    [[ "${d#/proc/}" != "$$" ]] && tr '\0' ' ' 2>/dev/null <"$d/cmdline" | grep -qF "$WORK/" &&
      echo "${d#/proc/}"
  done
  true
}

cancel_leftovers() {
  local i pids ids
  [[ -n "$SM_OUT" && -f "$SM_OUT" ]] || return 0
  # also when interrupted before the ids were parsed
  ids="$(grep -oE 'submitted with SLURM jobid [0-9]+' "$SM_OUT" | awk '{print $NF}' | paste -sd, -)"
  if [[ -n "$ids" ]]; then
    local -a idlist
    IFS=, read -ra idlist <<<"$ids"
    scancel "${idlist[@]}" 2>/dev/null
    for i in $(seq 1 45); do # slurmstepd: SIGTERM, KillWait (30 s), SIGKILL
      [[ -z "$(squeue -h -j "$ids" -t PD,R,CG -o %i 2>/dev/null)" ]] && break
      sleep 1
    done
  fi
  pids="$(workdir_pids)"
  [[ -n "$pids" ]] || return 0
  log "killing leftover processes of this run: $(tr '\n' ' ' <<<"$pids")"
  # shellcheck disable=SC2086 # a list of pids
  kill -TERM $pids 2>/dev/null
  sleep 5
  pids="$(workdir_pids)"
  # shellcheck disable=SC2086
  [[ -z "$pids" ]] || kill -KILL $pids 2>/dev/null
}

cleanup() {
  local rc=$?
  set +e
  if ((rc != 0)); then
    # do not leave jobs (or their processes) of a failed/timed-out run behind
    cancel_leftovers
  fi
  if ((STARTED_CLUSTER)); then
    log "bringing down the cluster this script started"
    bash "$CLUSTER" down >&2
  fi
  if ((OK)) && [[ "${HTSEP_E2E_KEEP:-0}" != 1 ]]; then
    [[ -n "$WORK" ]] && rm -rf "$WORK"
    [[ -n "$LOCAL_WORK" ]] && rm -rf "$LOCAL_WORK"
  elif [[ -n "$WORK" ]]; then
    log "workdirs kept: $WORK ${LOCAL_WORK}"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

copy_workflow() { # dest
  local name
  mkdir -p "$1"
  for name in "${WORKFLOW_FILES[@]}"; do
    [[ -e "$REPO/$name" ]] || continue
    cp -a "$REPO/$name" "$1/"
  done
  # generated/build outputs of the source tree are not inputs
  rm -rf "$1/paper/build" "$1/paper/generated"
  find "$1" -name __pycache__ -type d -prune -exec rm -rf {} +
}

# ---------------------------------------------------------------- prerequisites
[[ -x "$BIN/snakemake" ]] || fail "$BIN/snakemake not found (make setup, or set HTSEP_BIN)"
"$BIN/python" -c 'import snakemake_executor_plugin_slurm' 2>/dev/null ||
  fail "snakemake-executor-plugin-slurm is not installed in $BIN (pip install -e '.[slurm]')"
if [[ -n "$LOCAL_STUDY" ]]; then
  LOCAL_STUDY="$(cd "$LOCAL_STUDY" && pwd)" || fail "--local-study: no such directory"
  [[ -f "$LOCAL_STUDY/results/tables/lab/runs.csv" ]] || fail "$LOCAL_STUDY/results/tables/lab/runs.csv missing"
fi

# ---------------------------------------------------------------- cluster
cluster_ready() {
  command -v sinfo >/dev/null && scontrol ping >/dev/null 2>&1 &&
    [[ "$(sinfo -h -o %t 2>/dev/null | head -n1)" =~ ^(idle|mix|alloc|comp)$ ]]
}
DIAG=1
if cluster_ready; then
  log "SLURM cluster already up: using it and leaving it up"
else
  [[ $EUID -eq 0 ]] || fail "SLURM is not running and bringing it up needs root (sudo $0)"
  STARTED_CLUSTER=1 # from here on, down on exit whatever happens
  bash "$CLUSTER" up || fail "tests/cluster/slurm_cluster.sh up failed"
  cluster_ready || fail "cluster not ready after 'slurm_cluster.sh up'"
fi
[[ -r "$CTLD_LOG" ]] || fail "slurmctld log $CTLD_LOG not readable (cluster not started by slurm_cluster.sh? set SLURM_STATE)"
CTLD_OFFSET="$(stat -c %s "$CTLD_LOG")" # only log lines of this run count as evidence
ctld_log_since_start() { tail -c "+$((CTLD_OFFSET + 1))" "$CTLD_LOG"; }
log "cluster: $(sinfo -h -o '%P %D node(s) %c CPUs %m MB %G %t' | head -n1)"

# ---------------------------------------------------------------- SLURM run
WORK="$(mktemp -d "${TMPDIR:-/tmp}/htsep-slurm-e2e.XXXXXX")"
copy_workflow "$WORK"
SM_OUT="$WORK/snakemake_slurm.out"
log "running the test study through SLURM in $WORK (timeout ${TIMEOUT}s)"
T_RUN=$SECONDS
set +e
(cd "$WORK" && timeout --signal=INT --kill-after=60 "$TIMEOUT" \
  "$BIN/snakemake" "${TARGETS[@]}" --workflow-profile profiles/slurm "${GROUPING[@]}" --configfile config/test.yaml) >"$SM_OUT" 2>&1
SM_RC=$?
set -e
SLURM_WALL=$((SECONDS - T_RUN))

# evidence: "Job 3 has been submitted with SLURM jobid 42 (log: /.../slurm_logs/group_train/42.log)."
TRAIN_IDS=()
OTHER=() # "<jobid> <group_or_rule>"
while IFS= read -r line; do
  id="${line#*jobid }"
  id="${id%% *}"
  logf="${line#*(log: }"
  logf="${logf%)*}"
  rel="${logf#*slurm_logs/}"
  what="${rel%%/*}"
  SUBMITTED_IDS+=("$id")
  case "$what" in
    group_train* | rule_train) TRAIN_IDS+=("$id") ;; # group dir: group_<group>_<group>
    *) OTHER+=("$id $what") ;;
  esac
done < <(grep -oE 'submitted with SLURM jobid [0-9]+ \(log: [^)]+\)' "$SM_OUT" || true)

if ((SM_RC == 124 || SM_RC == 137)); then
  fail "snakemake did not finish within ${TIMEOUT}s"
elif ((SM_RC != 0)); then
  fail "snakemake through SLURM exited with $SM_RC"
fi
log "SLURM run finished in ${SLURM_WALL}s"

# ---------------------------------------------------------------- (a) jobs went through SLURM
# EP runs (train) and backprop reference runs (train_backprop) each leave one summary.json and one runs.csv row
N_TRAIN="$(awk '/^Job stats:/ {f = 1} f && ($1 == "train" || $1 == "train_backprop") {n += $2} f && $1 == "total" {print n; exit}' "$SM_OUT")"
[[ "$N_TRAIN" =~ ^[0-9]+$ ]] || fail "no train count in the 'Job stats' table of the snakemake output"
N_RUNS="$(find "$WORK/results/runs" -name summary.json | wc -l)"
((N_RUNS == N_TRAIN)) || fail "$N_RUNS run folders with summary.json, expected $N_TRAIN"
if grep -qE '^\s*localrule train:' "$SM_OUT"; then
  fail "a train job ran locally (localrule train in the snakemake output)"
fi
((${#TRAIN_IDS[@]} > 0)) || fail "no train job was submitted to SLURM"
((${#TRAIN_IDS[@]} < N_TRAIN)) ||
  fail "${#TRAIN_IDS[@]} SLURM submissions for $N_TRAIN train jobs: grouping did not happen"

CTLD_NEW="$(ctld_log_since_start)"
N_TRAIN_IN_JOBS=0
for id in "${SUBMITTED_IDS[@]}"; do
  grep -qE "_slurm_rpc_submit_batch_job: JobId=$id( |$)" <<<"$CTLD_NEW" ||
    fail "slurmctld log has no submission of JobId=$id"
  grep -qE "_job_complete: JobId=$id WEXITSTATUS 0( |$)" <<<"$CTLD_NEW" ||
    fail "slurmctld log has no 'JobId=$id WEXITSTATUS 0'"
  state="$(squeue --states=all -h -j "$id" -o %T 2>/dev/null | head -n1 || true)"
  [[ -z "$state" || "$state" == COMPLETED ]] || fail "squeue: job $id is $state"
  slog="$(find "$WORK/.snakemake/slurm_logs" -name "$id.log" | head -n1)"
  [[ -n "$slog" ]] || fail "no .snakemake/slurm_logs/**/$id.log"
done
TRAIN_REQUESTS=()
for id in "${TRAIN_IDS[@]}"; do
  # inside the allocation each member job is run by a nested snakemake as "localrule train:"
  slog="$(find "$WORK/.snakemake/slurm_logs" -name "$id.log" | head -n1)"
  n="$(grep -cE '^localrule train(_backprop)?:' "$slog" || true)"
  N_TRAIN_IN_JOBS=$((N_TRAIN_IN_JOBS + n))
  req="$(scontrol -o show job "$id" 2>/dev/null | grep -oE '(NumCPUs|TimeLimit|ReqTRES|MinMemoryNode)=[^ ]+' | tr '\n' ' ' || true)"
  TRAIN_REQUESTS+=("$id: $n train jobs; ${req:-scontrol show job: n/a}")
done
((N_TRAIN_IN_JOBS == N_TRAIN)) ||
  fail "the train SLURM job logs show $N_TRAIN_IN_JOBS executed train jobs, expected $N_TRAIN"
# any SLURM job of this run that failed (e.g. retried) is a failure too
if grep -E "_job_complete: JobId=[0-9]+ WEXITSTATUS [1-9]" <<<"$CTLD_NEW"; then
  fail "slurmctld logged a job with a non-zero exit status during this run"
fi
mapfile -t LOCAL_RULES < <(grep -oE '^\s*localrule \w+' "$SM_OUT" | awk '{print $2}' | sort | uniq -c |
  awk '{print $2 ($1 > 1 ? " x" $1 : "")}')

# ---------------------------------------------------------------- (b) same results as a local run
if [[ -z "$LOCAL_STUDY" ]]; then
  LOCAL_WORK="$(mktemp -d "${TMPDIR:-/tmp}/htsep-local-e2e.XXXXXX")"
  copy_workflow "$LOCAL_WORK"
  log "no --local-study: running ${TARGETS[*]} locally in $LOCAL_WORK"
  T_LOCAL=$SECONDS
  (cd "$LOCAL_WORK" && timeout --signal=INT --kill-after=30 "$TIMEOUT" \
    "$BIN/snakemake" "${TARGETS[@]}" --cores 2 --configfile config/test.yaml) >"$LOCAL_WORK/snakemake_local.out" 2>&1 ||
    { tail -n 40 "$LOCAL_WORK/snakemake_local.out" >&2; fail "local snakemake run failed"; }
  log "local run finished in $((SECONDS - T_LOCAL))s"
  LOCAL_STUDY="$LOCAL_WORK"
fi

"$BIN/python" - "$WORK" "$LOCAL_STUDY" "$N_TRAIN" "${PROTOCOLS[@]}" <<'EOF' || fail "results differ from the local run"
import sys
from pathlib import Path

import pandas as pd

slurm, local, n_train, protocols = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
TIMINGS = {"wall_seconds", "seconds"}  # machine-dependent, not results
for table, keys in (("runs", ["protocol", "dataset", "variant", "seed"]),
                    ("epochs", ["protocol", "dataset", "variant", "seed", "epoch"])):
    frames = []
    for root in (slurm, local):
        df = pd.concat([pd.read_csv(root / f"results/tables/{protocol}/{table}.csv") for protocol in protocols])
        frames.append(df.drop(columns=[c for c in df.columns if c in TIMINGS]).sort_values(keys, ignore_index=True))
    a, b = frames
    if table == "runs":
        assert len(a) == n_train, f"runs.csv has {len(a)} rows, expected {n_train}"
        for column in ("final_test_acc", "best_test_acc", "dt_mean_l1", "dt_std_l1"):
            assert column in a.columns, f"runs.csv lacks {column}"
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=0, atol=1e-9)
    print(f"[slurm_e2e] {table}.csv: {len(a)} rows x {a.shape[1]} columns equal to the local run (atol 1e-9)",
          file=sys.stderr)
EOF

# ---------------------------------------------------------------- summary
OK=1
OTHER_TXT="none"
((${#OTHER[@]})) && OTHER_TXT="$(printf '%s, ' "${OTHER[@]}")" && OTHER_TXT="${OTHER_TXT%, }"
LOCAL_TXT="none"
((${#LOCAL_RULES[@]})) && LOCAL_TXT="$(printf '%s, ' "${LOCAL_RULES[@]}")" && LOCAL_TXT="${LOCAL_TXT%, }"
cat <<EOF
==== SLURM e2e: PASS ====
cluster:            $(if ((STARTED_CLUSTER)); then echo "started by this script (brought down on exit)"; else echo "already running (left up)"; fi)
train jobs:         $N_TRAIN, run inside ${#TRAIN_IDS[@]} SLURM submission(s): jobid(s) ${TRAIN_IDS[*]}
train jobs in logs: $N_TRAIN_IN_JOBS 'localrule train' executions in .snakemake/slurm_logs of those jobs
$(printf '  job %s\n' "${TRAIN_REQUESTS[@]}")
other submissions:  $OTHER_TXT
local rules:        $LOCAL_TXT
slurmctld:          all ${#SUBMITTED_IDS[@]} job(s) submitted and '_job_complete ... WEXITSTATUS 0'; squeue: COMPLETED
results:            runs.csv/epochs.csv equal to $LOCAL_STUDY
wall time:          SLURM run ${SLURM_WALL}s, total $((SECONDS - T0))s
EOF
