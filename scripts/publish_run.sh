#!/usr/bin/env bash
# Copy one finished run of a recipe into a committed results folder, unchanged: stage 7's
# RESULTS.md and report/, the stage wall times, the corpus summary of stage 1 and, when
# local/pace_published.sh has run, the PACE table. README.md then quotes the copied files
# through scripts/sync_readme_results.py; nothing is retyped.
#   bash scripts/publish_run.sh RECIPE_DIR NAME
#   e.g. bash scripts/publish_run.sh /tmp/rerun/egs2/debian_sounds/sonar1 2026-11-30_default_3seeds
# RECIPE_DIR is the recipe directory of the run (the one holding exp/ and data/); the files land
# in egs2/<corpus>/sonar1/results/NAME/ of this checkout (an existing folder is replaced).
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 RECIPE_DIR NAME" >&2; exit 2; }
run=$(cd "$1" && pwd)
name=$2
root=$(cd "$(dirname "$0")/.." && pwd)
recipe_rel=${run#*/egs2/}
[ "${recipe_rel}" != "${run}" ] || { echo "error: ${run} is not a recipe under egs2/" >&2; exit 2; }
dest="${root}/egs2/${recipe_rel}/results/${name}"
for f in exp/RESULTS.md exp/stage_times.tsv exp/report/results.json exp/report/report.md; do
    [ -f "${run}/${f}" ] || { echo "error: ${run}/${f} is missing: run stages 1-7 first" >&2; exit 1; }
done
tmp=$(mktemp -d "${dest}.tmp.XXXX" 2>/dev/null || { mkdir -p "$(dirname "${dest}")"; mktemp -d "${dest}.tmp.XXXX"; })
trap 'rm -rf "${tmp}"' EXIT
cp "${run}/exp/RESULTS.md" "${run}/exp/stage_times.tsv" "${tmp}/"
cp -r "${run}/exp/report" "${tmp}/report"
[ -f "${run}/data/summary.md" ] && cp "${run}/data/summary.md" "${tmp}/corpus_summary.md"
pace="${run}/exp/pace_sonar/report"
if [ -f "${pace}/pace_table.md" ]; then
    mkdir -p "${tmp}/pace"
    for f in pace_table.md pace_table.csv pace_sessions.png; do
        [ -f "${pace}/${f}" ] && cp "${pace}/${f}" "${tmp}/pace/"
    done
fi
rm -rf "${dest}"
mv "${tmp}" "${dest}"
trap - EXIT
echo "published: ${dest}"
find "${dest}" -type f | sort
