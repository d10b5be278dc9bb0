#!/usr/bin/env bash
# Freezes what the upgrade tests compare against (test/GpuCommons.Server.Tests/Upgrade/previous-release/): the previous
# release (ci/previous-release.rev) migrates a fresh PostgreSQL database, seeds the demo tenancy and runs two jobs; then
#   columns.tsv      its schema (table, column, type, null/not-null, default/-): what that release reads and writes
#   migrations.txt   the migrations it applied
#   dump.sql         the whole database (pg_dump), for "this release on a database the previous one migrated"
#   demo-tokens.json the demo users' tokens in that dump
#   rev.txt          the commit
# Run it when a release is cut (after updating ci/previous-release.rev):  . /tmp/pgci-55432/env.sh; bash ci/freeze-previous-release.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/test/GpuCommons.Server.Tests/Upgrade/previous-release"
dll="$(bash "$root/ci/previous-release.sh")"
cs="${TEST_PG_CONNECTION:?set TEST_PG_CONNECTION (. /tmp/pgci-55432/env.sh)}"
get() { tr ';' '\n' <<<"$cs" | awk -F= -v k="$1" 'tolower($1)==tolower(k) {print $2}'; }
export PGHOST="$(get Host)" PGPORT="$(get Port)" PGUSER="$(get Username)" PGPASSWORD="$(get Password)"
db="gpuc_freeze_$$"
tmp="$(mktemp -d)"
port=$((20000 + RANDOM % 20000))
cleanup() { [[ -n "${pid:-}" ]] && kill "$pid" 2>/dev/null || true; psql -qd postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
dotnet "$dll" serve --db postgres --connection "Host=$PGHOST;Port=$PGPORT;Database=$db;Username=$PGUSER;Password=$PGPASSWORD" \
    --urls "http://127.0.0.1:$port" --data-dir "$tmp/data" --gpus virtual --virtual-gpus 8 >"$tmp/log" 2>&1 &
pid=$!
for _ in $(seq 120); do [[ "$(curl -sf "http://127.0.0.1:$port/healthz" || true)" == leader ]] && break; sleep 1; done
token="$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['bob'])" "$tmp/data/demo-tokens.json")"
for k in frozen-1 frozen-2; do
    curl -sf -H "Authorization: Bearer $token" -H "Idempotency-Key: $k" -H 'Content-Type: application/json' \
        -d '{"project":"demo","gpus":1,"walltime":"5m","command":["true"]}' "http://127.0.0.1:$port/api/jobs" >/dev/null
done
for _ in $(seq 60); do
    [[ "$(psql -qtAd "$db" -c "SELECT count(*) FROM jobs WHERE \"State\" = 'finished'")" == 2 ]] && break; sleep 1
done
kill -TERM "$pid"; wait "$pid" || true; pid=
mkdir -p "$out"
git -C "$root" rev-parse "$(tr -d '[:space:]' < "$root/ci/previous-release.rev")" > "$out/rev.txt"
{
    echo "# table	column	type	null|not-null	default|-  (ci/freeze-previous-release.sh)"
    psql -qtAF $'\t' -d "$db" -c "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), CASE WHEN a.attnotnull THEN 'not-null' ELSE 'null' END,
        CASE WHEN a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '' THEN 'default' ELSE '-' END
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped ORDER BY c.relname, a.attnum"
} > "$out/columns.tsv"
{ echo "# migrations the previous release applied (ci/freeze-previous-release.sh)"; psql -qtAd "$db" -c 'SELECT "MigrationId" FROM "__EFMigrationsHistory" ORDER BY 1'; } > "$out/migrations.txt"
pg_dump --no-owner --no-privileges --column-inserts -d "$db" | grep -v '^\\' > "$out/dump.sql"
cp "$tmp/data/demo-tokens.json" "$out/demo-tokens.json"
echo "frozen into $out: $(wc -l < "$out/columns.tsv") columns, $(grep -vc '^#' "$out/migrations.txt") migrations"
