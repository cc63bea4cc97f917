"""Aggregate one day of listings: listings and mean price per city.

spark-submit aggregate_listings.py SOURCE TARGET [DAY]
  SOURCE  raw listings (JSON lines with city, price, listed_at)
  TARGET  where the day's aggregate is written (Parquet, partitioned by day)
  DAY     YYYY-MM-DD (default: yesterday, UTC)
"""

import sys
from datetime import UTC, datetime, timedelta

from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    source, target = argv[1], argv[2]
    day = argv[3] if len(argv) > 3 else (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    spark = SparkSession.builder.appName("aggregate-listings").getOrCreate()
    listings = spark.read.json(source).where(F.to_date("listed_at") == F.lit(day))
    daily = (listings.groupBy("city")
             .agg(F.count("*").alias("listings"), F.avg("price").alias("mean_price"))
             .withColumn("day", F.lit(day)))
    daily.write.mode("overwrite").partitionBy("day").parquet(target)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
