set shell := ["bash", "-euo", "pipefail", "-c"]

# Brings up Kafka and Cassandra, runs the reviews app on a generated stream, shows the results.
demo:
    scripts/demo.sh

# Formatting, lints, unit and integration tests (starts and stops Kafka and Cassandra as needed).
test:
    scripts/test.sh

# The end-to-end suite N times in a row; reports every test that failed in any run.
test-repeat N="3":
    scripts/test-repeat.sh {{N}}

# The platform binary and the tenant apps.
build: prereqs build-apps
    cargo build --release -p mysimbdp-host

# Every tenant app under tenant-apps/, as Wasm components (the Python ones by `mysimbdp app build`).
build-apps: prereqs
    cargo build --release --target wasm32-wasip2 $(ls tenant-apps/*/Cargo.toml | cut -d/ -f2 | sed 's/^/-p /')
    cargo build --release -p mysimbdp-host
    scripts/build-guest-apps.sh

# The decoder, TSV reader, window assigner and event-time parser against N generated inputs per
# property (a short pass of the same runs in `just test`).
fuzz N="10000000": prereqs
    cargo build --release --target wasm32-wasip2 -p reviews-daily
    MYSIMBDP_FUZZ_CASES={{N}} cargo test --release -p mysimbdp-host --test fuzz
    MYSIMBDP_FUZZ_CASES={{N}} cargo test --release -p mysimbdp-host --lib -- properties

# The wasm32-wasip2 target and rustup components when missing; names what it cannot install.
prereqs:
    scripts/prereqs.sh

# Start (or reuse) local Kafka, Cassandra, the sentiment service (services/sentiment), and the alert
# workflow's s3proxy, SMTP server and Airflow.
up:
    deploy/local/up.sh all

# Stop the services that `just up` started.
down:
    deploy/local/down.sh all

# Throughput: the pipeline and the plugin boundary in-process, then end to end through Kafka and Cassandra.
bench: build
    cargo bench -p mysimbdp-host --bench pipeline --bench plugin
    cargo bench -p mysimbdp-host --bench languages
    scripts/with-services.sh scripts/bench-e2e.sh 300000
    scripts/bench-auth.sh 200000
    scripts/with-services.sh cargo run --release -q -p mysimbdp-tests --bin bench-cassandra 100000 3
    BENCH_TENANTS_JSON=bench/tenants.json scripts/with-services.sh cargo run --release -q -p mysimbdp-tests --bin bench-tenants
    scripts/with-services.sh scripts/bench-checkpoint.sh 200000
    scripts/with-services.sh cargo run --release -q -p mysimbdp-tests --bin bench-neighbour
    scripts/with-services.sh cargo run --release -q -p mysimbdp-tests --bin bench-delivery
    scripts/with-services.sh scripts/bench-dashboard.sh 60
    scripts/with-services.sh scripts/bench-enrich.sh 30000
    scripts/with-services.sh scripts/bench-batch.sh 1000000

# Two builds side by side on the end-to-end bench, interleaved (copy the first aside, then build the second).
bench-ab A B RUNS="3" ROWS="300000":
    scripts/with-services.sh scripts/bench-ab.sh {{A}} {{B}} {{RUNS}} {{ROWS}}

# Spark Structured Streaming against mysimbdp on the same data and machine: bench/report.md (issue 5).
bench-spark: build
    scripts/with-services.sh scripts/bench-spark.sh
