"""The one place a SparkSession is built: Delta enabled, the same code for local, local-cluster and spark://.

Called only by the CLI and the ``jobs/`` entry points; everything else receives the session as an argument.
Under ``spark-submit`` the JARs come from ``--packages``/the cluster and settings given with ``--conf`` win over
the YAML profile; in a plain Python process Spark's Ivy resolver fetches the Delta JAR from Maven Central.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterator

from pyspark.sql import SparkSession

from medspark.config.model import MedsparkConfig
from medspark.errors import EnvironmentProblem

log = logging.getLogger(__name__)

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def under_spark_submit() -> bool:
    """True when this Python process was started by spark-submit (the JVM already exists)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def check_java() -> str:
    """Return the java executable Spark will use, or raise one clear line when there is none."""
    java_home = os.environ.get("JAVA_HOME")
    java = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
    if not java or not os.path.exists(java):
        raise EnvironmentProblem("Java not found: install Java 17 (e.g. openjdk-17-jre) or set JAVA_HOME")
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        raise EnvironmentProblem(f"Java at {java} cannot run: {exc.strerror}") from exc
    text = out.stderr or out.stdout or ""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if match:
        major = int(match.group(2) or 0) if match.group(1) == "1" else int(match.group(1))
        if major < 17:
            raise EnvironmentProblem(f"Spark 4 needs Java 17 or newer; {java} is Java {major}")
    return java


def build_session(config: MedsparkConfig) -> SparkSession:
    """Create (or join, under spark-submit) the SparkSession described by ``config``.

    Raises:
        EnvironmentProblem: no usable Java, or the JVM could not start (typically the Delta JAR could not be
            resolved because Maven Central is unreachable).
    """
    os.environ.setdefault("PYSPARK_PYTHON", os.environ.get("PYSPARK_PYTHON") or _python())
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    settings = {**config.spark.conf, **DELTA_CONF}
    builder = SparkSession.builder.appName(config.spark.app_name)
    if under_spark_submit():
        submitted = _submitted_conf()
        for key, value in settings.items():
            if key not in submitted:  # spark-submit --conf wins over YAML
                builder = builder.config(key, value)
        if config.spark.master and "spark.master" not in submitted:
            builder = builder.master(config.spark.master)
    else:
        check_java()
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = builder.master(config.spark.master or "local[*]")
        for key, value in settings.items():
            builder = builder.config(key, value)
        builder = builder.config("spark.jars.packages", config.spark.delta_package)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # the JVM's own output (Ivy report, etc.) is already on stderr
        if "JAVA_GATEWAY_EXITED" in str(exc):
            raise EnvironmentProblem(
                "Spark could not start its JVM: most often the Delta JAR "
                f"{config.spark.delta_package} could not be downloaded from Maven Central "
                "(check network/proxy, or pre-populate ~/.ivy2.5.2); see the lines above"
            ) from exc
        raise
    session.sparkContext.setLogLevel("WARN")
    log.info("spark session ready: master=%s version=%s", session.sparkContext.master, session.version)
    return session


def _python() -> str:
    import sys

    return sys.executable


def _submitted_conf() -> set[str]:
    from pyspark import SparkConf
    from pyspark.core.context import SparkContext

    SparkContext._ensure_initialized()  # joins the gateway spark-submit started
    return {key for key, _ in SparkConf().getAll()}


@contextlib.contextmanager
def session_conf(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """Session settings for the block only; the previous values (or their absence) come back after."""
    previous: dict[str, str | None] = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, before in previous.items():
            if before is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, before)
