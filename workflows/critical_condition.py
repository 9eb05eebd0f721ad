"""The critical-condition workflow of mysimbdp (Part 3 of the report).

An alert of a tenant's stream app (a product's day with many one-star reviews, say) triggers one
run of this DAG, with the run id derived from the alert's id, so one alert gives at most one run.
Three tasks:

1. ``history``: runs the tenant's history analytics with ``mysimbdp batch`` for the alert's
   products over the stream's stored results: all-time figures and the seasonality per calendar
   month (and each product's best and worst months), as CSV and Parquet.
2. ``upload``: puts those files into the tenant's bucket of the S3-compatible object store.
3. ``notify``: e-mails the tenant's contact the alert and presigned links to the files, and
   posts the same to the tenant's webhook when one is configured.

The run's ``conf`` (sent by ``mysimbdp trigger``): ``alert`` (the alert as on the alerts topic),
``tenant``, ``products``, ``from`` (the table of daily results), ``contact`` and ``webhook``.
Where the platform's services are comes from the JSON file named by
``MYSIMBDP_WORKFLOW_SETTINGS`` (written by ``deploy/local/up.sh``).
"""

from __future__ import annotations

import json
import os
import re
import smtplib
import subprocess
import urllib.request
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

from airflow.sdk import dag, get_current_context, task

# The history analytics, in the order they run: (app crate, table read, name of its results).
ANALYTICS = [
    ("product_all_time", None, "product_all_time"),
    ("product_seasonality", None, "product_seasonality"),
    ("product_best_months", "product_seasonality", "product_best_months"),
]
# How long a link in the e-mail works (S3's longest presigned lifetime).
LINK_SECONDS = 7 * 24 * 3600
IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,47}$")


def settings() -> dict:
    path = os.environ.get("MYSIMBDP_WORKFLOW_SETTINGS")
    if not path:
        raise RuntimeError("MYSIMBDP_WORKFLOW_SETTINGS is not set: start Airflow with deploy/local/up.sh")
    with open(path) as f:
        return json.load(f)


def run_conf() -> dict:
    conf = dict(get_current_context()["dag_run"].conf or {})
    for field in ("alert", "tenant", "products"):
        if field not in conf:
            raise ValueError(f"the run's conf has no `{field}`: trigger it with mysimbdp trigger")
    if not IDENTIFIER.match(conf["tenant"]):
        raise ValueError(f"tenant `{conf['tenant']}` is not a valid tenant id")
    if not conf["products"]:
        raise ValueError("the run's conf names no products")
    return conf


def bucket_of(tenant: str) -> str:
    """A tenant's bucket: S3 bucket names allow no `_`, tenant ids no `-`, so this is one-to-one."""
    return "tenant-" + tenant.replace("_", "-")


def s3_client(s3: dict):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=s3["endpoint"],
        aws_access_key_id=s3["identity"],
        aws_secret_access_key=s3["credential"],
        region_name="us-east-1",
        # s3proxy implements neither the newer default checksum headers nor chunked uploads.
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


@dag(
    dag_id="critical_condition",
    schedule=None,
    catchup=False,
    max_active_runs=4,
    tags=["mysimbdp"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    doc_md=__doc__,
)
def critical_condition():
    @task
    def history() -> dict:
        conf = run_conf()
        s = settings()
        run_id = get_current_context()["dag_run"].run_id
        out = Path(s["runs"]) / re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)
        out.mkdir(parents=True, exist_ok=True)
        source = conf.get("from", "aggregated_reviews")
        files = []
        for app, table, name in ANALYTICS:
            command = [
                s["mysimbdp"], "batch", "--tenant", conf["tenant"],
                "--app", str(Path(s["apps"]) / f"{app}.wasm"),
                "--from", table or source,
                "--cassandra", s["cassandra"],
                "--csv", str(out / f"{name}.csv"),
                "--parquet", str(out / f"{name}.parquet"),
            ]
            for product in conf["products"]:
                command += ["--where", f"product_id={product}"]
            env = dict(os.environ)
            if s.get("cassandra_user"):
                env["MYSIMBDP_CASSANDRA_USER"] = s["cassandra_user"]
                env["MYSIMBDP_CASSANDRA_PASSWORD_FILE"] = s["cassandra_password_file"]
            done = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=env)
            if done.returncode != 0:
                raise RuntimeError(f"mysimbdp batch ({app}) failed: {done.stderr[-2000:]}")
            files += [str(out / f"{name}.csv"), str(out / f"{name}.parquet")]
        return {"files": files}

    @task
    def upload(made: dict) -> dict:
        conf = run_conf()
        s = settings()
        client = s3_client(s["s3"])
        bucket = bucket_of(conf["tenant"])
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)
        run_id = get_current_context()["dag_run"].run_id
        prefix = "alerts/" + re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)
        links = {}
        for path in made["files"]:
            key = f"{prefix}/{Path(path).name}"
            client.put_object(Bucket=bucket, Key=key, Body=Path(path).read_bytes())
            links[key] = client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=LINK_SECONDS
            )
        return {"bucket": bucket, "links": links}

    @task
    def notify(uploaded: dict) -> None:
        conf = run_conf()
        s = settings()
        alert = conf["alert"]
        alert_id = alert.get("alert_id", "?")
        lines = [
            f"mysimbdp raised an alert for tenant {conf['tenant']}: {alert_id}",
            "",
            "The alert: " + json.dumps(alert, sort_keys=True),
            "",
            f"History analytics of {', '.join(conf['products'])}, in bucket {uploaded['bucket']}"
            f" (links valid {LINK_SECONDS // 86400} days):",
        ]
        lines += [f"  {key}: {url}" for key, url in sorted(uploaded["links"].items())]
        body = "\n".join(lines) + "\n"
        if conf.get("contact"):
            message = EmailMessage()
            message["From"] = s["smtp"]["sender"]
            message["To"] = conf["contact"]
            message["Subject"] = f"mysimbdp alert {alert_id}"
            message["X-Mysimbdp-Alert"] = alert_id
            message.set_content(body)
            with smtplib.SMTP(s["smtp"]["host"], s["smtp"]["port"], timeout=30) as smtp:
                smtp.send_message(message)
        if conf.get("webhook"):
            payload = json.dumps({"alert": alert, "links": uploaded["links"]}).encode()
            request = urllib.request.Request(
                conf["webhook"], data=payload, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                if response.status >= 300:
                    raise RuntimeError(f"the webhook answered {response.status}")

    notify(upload(history()))


critical_condition()
