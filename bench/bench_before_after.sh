#!/usr/bin/env bash
# cifar_core's training at the tutorial's settings (batch 4, SGD 0.001/0.9, 2 epochs), this
# checkout against an earlier one, interleaved (the order alternates each round), each run in a
# fresh process through bench_train.py's own worker, without the tutorial's loop between them:
#
#     git worktree add /tmp/before <commit>
#     bash bench/bench_before_after.sh /tmp/before [rounds] [training images] [data dir]
#
# Prints one line per run (round, which, images/s) and the median of the per-round ratios
# now / before. bench_train.py --before does the same with the tutorial's loop in between.
set -euo pipefail
before=$(cd "$1" && pwd)
rounds=${2:-10}
images=${3:-20000}
data=${4:-${CIFAR_DATA_DIR:-/tmp/cifar/batches}}
now=$(cd "$(dirname "$0")/.." && pwd)
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
for round in $(seq 1 "$rounds"); do
    order="now before"
    [ $((round % 2)) -eq 0 ] && order="before now"
    for which in $order; do
        root=$now
        [ "$which" = before ] && root=$before
        result="$results/$which-$round.json"
        task="{\"kind\": \"ours_train\", \"data_dir\": \"$data\", \"epochs\": 2, \"seed\": $round,
               \"train_size\": $images, \"test_size\": null, \"batch_size\": 4,
               \"device\": \"cpu\", \"verbose\": false, \"result\": \"$result\"}"
        (cd "$root" && python3 bench/bench_train.py --worker "$task" > /dev/null 2>&1)
        python3 -c "import json, sys; print(sys.argv[1], sys.argv[2],
              round(json.load(open(sys.argv[3]))['images_per_s']))" "$round" "$which" "$result"
    done
done | tee "$results/lines"
python3 - "$results/lines" <<'PY'
import statistics, sys
speeds = {}
for line in open(sys.argv[1]):
    round_, which, ips = line.split()
    speeds.setdefault(round_, {})[which] = float(ips)
ratios = [s["now"] / s["before"] for s in speeds.values()]
print(f"now / before, median of {len(ratios)} rounds: {statistics.median(ratios):.3f} "
      f"(per round {min(ratios):.2f}-{max(ratios):.2f})")
PY
