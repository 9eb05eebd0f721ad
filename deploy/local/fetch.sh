#!/usr/bin/env bash
# Resolve the Kafka, Cassandra and s3proxy runtime jars from Maven Central into
# <repo>/.state/lib/{kafka,cassandra,s3proxy}.
# Usage: deploy/local/fetch.sh [kafka|cassandra|s3proxy|all]   (Python services: nothing to fetch)
# Skips a service whose jars are already there for the current pom.xml (the pom's sha256 is kept
# in .state/lib/<svc>/.fetched). Works on a fresh machine with an empty ~/.m2.
# MYSIMBDP_M2_REPO=/some/dir uses that local Maven repository instead of ~/.m2/repository.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.7.1"

fetch_one() {
  local svc=$1
  local pom="$DEPLOY_DIR/$svc/pom.xml"
  local dest="$LIB_DIR/$svc"
  local want have=""
  want="$(sha256sum "$pom" | cut -d' ' -f1)"
  [[ -f "$dest/.fetched" ]] && have="$(cat "$dest/.fetched")"
  if [[ "$want" == "$have" ]]; then
    log "$svc: jars already in ${dest#"$REPO_ROOT"/} ($(find "$dest" -name '*.jar' | wc -l) jars), skipping"
    return 0
  fi

  command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
  local tmp="$dest.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp" "$LIB_DIR"
  local mvn_args=(-q -B -Dstyle.color=never -f "$pom")
  [[ -n "${MYSIMBDP_M2_REPO:-}" ]] && mvn_args+=("-Dmaven.repo.local=$MYSIMBDP_M2_REPO")
  log "$svc: resolving jars from Maven Central (first time on a machine: a minute or so)"
  local t0=$SECONDS
  # Maven 3.8's default dependency plugin is too old: pin 3.7.1. Maven itself runs on JDK 17 too.
  # For cassandra-all, Maven prints an ERROR about ${jmc5.path} in the parent pom: harmless.
  # Maven's output goes to a log (it also emits bare colour codes even with -q -B); shown on failure.
  local mvnlog="$LIB_DIR/$svc.fetch.log"
  if ! JAVA_HOME="$JAVA_HOME" mvn "${mvn_args[@]}" "$DEP_PLUGIN:copy-dependencies" \
        -DoutputDirectory="$tmp" -DincludeScope=runtime >"$mvnlog" 2>&1 </dev/null; then
    sed 's/\x1b\[[0-9;]*m//g' "$mvnlog" | tail -n 60 >&2
    rm -rf "$tmp"
    die "$svc: mvn copy-dependencies failed (full output in ${mvnlog#"$REPO_ROOT"/})"
  fi
  echo "$want" >"$tmp/.fetched"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  log "$svc: $(find "$dest" -name '*.jar' | wc -l) jars, $(du -sh "$dest" | cut -f1), in $((SECONDS - t0)) s"
}

require_java
for svc in $(services_from_arg "${1:-all}"); do
  [[ "$svc" =~ ^(sentiment|smtp|airflow)$ ]] && continue   # Python packages, installed by up.sh
  fetch_one "$svc"
done
