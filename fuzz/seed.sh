#!/usr/bin/env bash
# Seeds the fuzz corpora from the repository's fixtures: one file per NDJSON line for the
# decoders, one encoded ring record per exec event for the record decoder, the shipped and
# Elastic rule files for the rule loader, the default configs for the config parser, and the
# hostile seeds under fuzz/seeds/. Corpora are not committed; re-running adds the seeds to
# whatever a previous run found.
set -euo pipefail
cd "$(dirname "$0")"
fixtures=../tests/fixtures
shared=../../shared/fixtures

seed_lines() { # TARGET FILE...
  local target=$1
  shift
  mkdir -p "corpus/$target"
  for f in "$@"; do
    [ -f "$f" ] || continue
    split -l 1 -d -a 4 "$f" "corpus/$target/$(basename "$f" .ndjson)-"
  done
}

seed_lines eslogger_decode "$fixtures"/eslogger/*.ndjson "$shared"/eslogger/*.ndjson
seed_lines ecs_decode "$fixtures"/ecs/*.ndjson
cargo run --quiet --release -p nightjar-fuzz-seed -- corpus/ring_record_decode \
  "$fixtures"/eslogger/*.ndjson
mkdir -p corpus/rule_toml corpus/config_parse
for f in ../rules/builtin/*.toml ../packaging/linux/rules/*.toml "$shared"/../elastic-rules/*.toml \
  "$shared"/../elastic-rules/*/*.toml; do
  [ -f "$f" ] && cp "$f" "corpus/rule_toml/$(basename "$(dirname "$f")")-$(basename "$f")"
done
for f in ../packaging/linux/nightjar.toml ../packaging/macos/nightjar.toml; do
  [ -f "$f" ] && cp "$f" "corpus/config_parse/$(basename "$(dirname "$f")").toml"
done
# Hand-written hostile seeds (committed): rules nested past the parsers' depth limit,
# non-ASCII text and escapes whose decoded offsets differ from the file's, long whitespace
# runs, many tests; Kibana exception exports, hostile ones included; a policy payload; eslogger
# launch items, quarantine removals and opens with hostile URLs, escapes and duplicate keys.
for d in seeds/*/; do
  t=$(basename "$d")
  mkdir -p "corpus/$t"
  cp "$d"* "corpus/$t/"
done
for t in eslogger_decode ecs_decode ring_record_decode rule_toml config_parse exceptions_ndjson \
  policy_payload; do
  echo "corpus/$t: $(find "corpus/$t" -type f | wc -l) files" >&2
done
