#!/usr/bin/env bash
# Export a deterministic sample of search events for the logical date as CSV.
set -euo pipefail
date="${DPC_LOGICAL_DATE:0:10}"
out="$DPC_DATA_DIR/searches/date=$date"
mkdir -p "$out"
seed=$(echo -n "$date" | cksum | cut -d' ' -f1)
awk -v seed="$seed" 'BEGIN {
  srand(seed); split("madrid barcelona valencia sevilla bilbao", c, " ");
  print "search_id,city,results";
  for (i = 0; i < 50000; i++) printf "s%d,%s,%d\n", i, c[int(rand() * 5) + 1], int(rand() * 40);
}' > "$out/searches.csv"
echo "searches for $date: $(($(wc -l < "$out/searches.csv") - 1)) events written to $out"
