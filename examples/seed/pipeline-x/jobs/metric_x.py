"""Metric X: the share of a day's searches that found at least one listing in the city.

spark-submit metric_x.py LISTINGS SEARCHES TARGET DAY
  LISTINGS  the daily aggregate of `listings` (Parquet, partitioned by day)
  SEARCHES  the export of `searches` (JSON lines with city, searched_at)
  TARGET    where the metric is written (Parquet, partitioned by day)
  DAY       YYYY-MM-DD
"""

import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def main(argv: list[str]) -> int:
    if len(argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    listings_path, searches_path, target, day = argv[1:5]
    spark = SparkSession.builder.appName("metric-x").getOrCreate()
    listings = spark.read.parquet(listings_path).where(F.col("day") == day)
    searches = spark.read.json(searches_path).where(F.to_date("searched_at") == F.lit(day))
    cities = listings.where(F.col("listings") > 0).select("city")
    served = searches.join(cities, "city", "left_semi")
    metric = (searches.groupBy("city").count().withColumnRenamed("count", "searches")
              .join(served.groupBy("city").count().withColumnRenamed("count", "served"),
                    "city", "left")
              .fillna(0, ["served"])
              .withColumn("metric_x", F.col("served") / F.col("searches"))
              .withColumn("day", F.lit(day)))
    metric.write.mode("overwrite").partitionBy("day").parquet(target)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
