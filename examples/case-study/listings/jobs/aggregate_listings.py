"""Aggregate a generated sample of listing events for the logical date (Spark)."""

import os
import random
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

date = os.environ["DPC_LOGICAL_DATE"][:10]
out = os.path.join(os.environ["DPC_DATA_DIR"], "listings", f"date={date}")
if os.environ.get("LISTINGS_FAIL") == "1":  # lets the README show the fallback path
    sys.exit("listings: source system unavailable (LISTINGS_FAIL=1)")

rng = random.Random(date)
cities = ["madrid", "barcelona", "valencia", "sevilla", "bilbao"]
events = [(f"l{rng.randrange(5000)}", rng.choice(cities), rng.choice(["new", "update", "remove"]),
           rng.randint(400, 2500)) for _ in range(20_000)]

spark = SparkSession.builder.appName(f"listings-{date}").getOrCreate()
spark.sparkContext.setLogLevel("ERROR")
df = spark.createDataFrame(events, ["listing_id", "city", "action", "price"])
agg = (df.where(F.col("action") != "remove")
         .groupBy("city")
         .agg(F.countDistinct("listing_id").alias("listings"), F.avg("price").alias("avg_price")))
agg.coalesce(1).write.mode("overwrite").parquet(out)
print(f"listings for {date}: {agg.count()} cities written to {out}")
spark.stop()
