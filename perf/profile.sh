#!/usr/bin/env bash
# Profile a tradepipe benchmark or command before optimising it.
#
#   perf/profile.sh spy    perf/bench_matching.py --quick   # py-spy flame graph (SVG)
#   perf/profile.sh instr  perf/bench_risk.py --quick       # pyinstrument call tree
#   perf/profile.sh stat   perf/bench_ring.py --quick       # Linux perf counters
#
# Output lands in perf/results/ (git-ignored). py-spy and pyinstrument come with the
# dev extra; `perf` is Debian's linux-perf (counters are unavailable on some VMs).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: perf/profile.sh spy|instr|stat SCRIPT [ARGS...]}
shift
out=perf/results
mkdir -p "$out"
stamp=$(date +%Y%m%d-%H%M%S)
python=.venv/bin/python
case "$mode" in
  spy)   .venv/bin/py-spy record --subprocesses --rate 500 -o "$out/$stamp.svg" -- "$python" "$@"
         echo "flame graph: $out/$stamp.svg" ;;
  instr) "$python" -m pyinstrument -o "$out/$stamp.txt" "$@"
         echo "call tree: $out/$stamp.txt" ;;
  stat)  perf stat -e task-clock,context-switches,cpu-migrations,cycles,instructions,cache-misses \
           -- "$python" "$@" ;;
  *)     echo "unknown mode $mode: use spy, instr or stat" >&2; exit 2 ;;
esac
