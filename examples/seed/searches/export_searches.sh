#!/bin/bash
# Export yesterday's searches (JSON lines) from the search service's bucket to the
# team's export prefix: EXPORT_SOURCE and EXPORT_TARGET are s3:// prefixes.
set -euo pipefail
day="${1:-$(date -u -d yesterday +%F)}"
: "${EXPORT_SOURCE:?set EXPORT_SOURCE (s3://bucket/prefix)}"
: "${EXPORT_TARGET:?set EXPORT_TARGET (s3://bucket/prefix)}"
aws s3 sync --only-show-errors "${EXPORT_SOURCE%/}/day=${day}/" "${EXPORT_TARGET%/}/day=${day}/"
echo "exported searches of ${day} to ${EXPORT_TARGET%/}/day=${day}/"
