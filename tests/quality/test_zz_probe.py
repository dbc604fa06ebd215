import json, time, os
import great_expectations as gx
import great_expectations.expectations as gxe
from pyspark.sql import functions as sf

def test_probe(spark_session, tmp_path):
    spark = spark_session
    sc = spark.sparkContext
    t0 = time.monotonic()
    df = spark.range(2000).select(sf.col("id").alias("k"), (sf.col("id") % 7).alias("a"),
        sf.when(sf.col("id") % 100 == 0, None).otherwise(sf.col("id") * 2).alias("b"),
        (sf.col("id") % 5 == 0).alias("_ok__x")).cache()
    df.count()
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = {"globally": False}
    ds = ctx.data_sources.add_spark(name="dq")
    asset = ds.add_dataframe_asset(name="t")
    bd = asset.add_batch_definition_whole_dataframe("all")
    batch = bd.get_batch(batch_parameters={"dataframe": df})
    suite = gx.ExpectationSuite(name="t")
    for i in range(5):
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="b", meta={"id": f"nn{i}"}))
        suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="a", min_value=0, max_value=5, mostly=0.5))
        suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="_ok__x", value_set=[True]))
    suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="a"))
    suite.add_expectation(gxe.ExpectColumnValuesToBeOfType(column="a", type_="LongType"))
    suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=1))
    suite = ctx.suites.add(suite)
    rf = {"result_format": "BASIC", "partial_unexpected_count": 0, "exclude_unexpected_values": True,
          "include_unexpected_rows": False, "return_unexpected_index_query": False}
    sc.setJobGroup("ge", "ge")
    t1 = time.monotonic()
    res = batch.validate(suite, result_format=rf)
    t2 = time.monotonic()
    jobs = sc.statusTracker().getJobIdsForGroup("ge")
    print("setup", t1 - t0, "validate", t2 - t1, "jobs", len(jobs))
    t3 = time.monotonic()
    res2 = batch.validate(suite, result_format=rf)
    print("second validate", time.monotonic() - t3, "jobs", len(sc.statusTracker().getJobIdsForGroup("ge")))
    d = res.to_json_dict()
    print(json.dumps(d["results"][:3] + d["results"][-3:], indent=1, default=str)[:6000])
    print(type(res), d.keys(), d["meta"])
    # docs
    ctx.add_data_docs_site("local", {"class_name": "SiteBuilder", "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(tmp_path / "docs")}, "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}})
    from great_expectations.data_context.types.resource_identifiers import ValidationResultIdentifier, ExpectationSuiteIdentifier
    print(res.meta)
    t4=time.monotonic()
    key = ValidationResultIdentifier(expectation_suite_identifier=ExpectationSuiteIdentifier(name="t"), run_id=res.meta.get("run_id"), batch_identifier="b1")
    ctx.validation_results_store.set(key, res)
    out = ctx.build_data_docs(site_names=["local"])
    print("docs", time.monotonic()-t4, out)
    for root, dirs, files in os.walk(tmp_path / "docs"):
        print(root, files)
    assert False
