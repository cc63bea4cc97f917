#!/bin/bash
# When `listings` fails, publish the previous day's aggregate as today's, so the
# consumers of the aggregate find a partition. LISTINGS_TARGET is the s3:// prefix the
# aggregate is written to (partitioned by day=YYYY-MM-DD).
set -euo pipefail
day="${1:-$(date -u -d yesterday +%F)}"
previous="$(date -u -d "${day} -1 day" +%F)"
: "${LISTINGS_TARGET:?set LISTINGS_TARGET (s3://bucket/prefix)}"
aws s3 sync --only-show-errors "${LISTINGS_TARGET%/}/day=${previous}/" "${LISTINGS_TARGET%/}/day=${day}/"
echo "copied listings of ${previous} to day=${day}"
