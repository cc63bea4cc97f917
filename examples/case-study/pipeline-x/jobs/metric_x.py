"""Metric X: searches per available listing, by city, for the logical date (Spark)."""

import json
import os

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

date = os.environ["DPC_LOGICAL_DATE"][:10]
data = os.environ["DPC_DATA_DIR"]
parents = json.loads(os.environ.get("DPC_PARENTS", "[]"))
print("triggered by: " + ", ".join(f"{p['pipeline']} {p['status']}" for p in parents))

spark = SparkSession.builder.appName(f"metric-x-{date}").getOrCreate()
spark.sparkContext.setLogLevel("ERROR")
listings = spark.read.parquet(os.path.join(data, "listings", f"date={date}"))
searches = spark.read.option("header", True).csv(
    os.path.join(data, "searches", f"date={date}", "searches.csv"))
per_city = searches.groupBy("city").agg(F.count("*").alias("searches"))
metric = (listings.join(per_city, "city")
          .withColumn("x", F.round(F.col("searches") / F.col("listings"), 3))
          .orderBy("city"))
rows = metric.select("city", "listings", "searches", "x").collect()
out = os.path.join(data, "pipeline-x", f"date={date}")
os.makedirs(out, exist_ok=True)
total_x = round(sum(r["searches"] for r in rows) / sum(r["listings"] for r in rows), 3)
with open(os.path.join(out, "metric_x.json"), "w") as f:
    json.dump({"date": date, "x": total_x, "by_city": [r.asDict() for r in rows]}, f, indent=1)
for r in rows:
    print(f"  {r['city']:<10} listings={r['listings']:>5} searches={r['searches']:>6} x={r['x']}")
print(f"METRIC X for {date}: {total_x}")
spark.stop()
