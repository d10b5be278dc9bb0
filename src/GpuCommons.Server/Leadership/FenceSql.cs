namespace GpuCommons.Server.Leadership;

/// <summary>
/// The PostgreSQL side of leadership: the lease row, the submission inbox, and the fence. Used by the migration that
/// creates them and, at every takeover, to put the fence on tables added since (a later migration's new table is fenced
/// without its author doing anything).
/// </summary>
public static class FenceSql
{
    /// <summary>The session setting a leader's connections carry (<c>Options=-c gpuc.epoch=N</c>).</summary>
    public const string EpochSetting = "gpuc.epoch";

    /// <summary>Prefix of the error a stale leader's write gets.</summary>
    public const string StaleMessage = "gpuc fence:";

    public const string CreateTables = """
        CREATE TABLE IF NOT EXISTS leader_lease (
            id integer PRIMARY KEY CHECK (id = 1),
            epoch bigint NOT NULL,
            holder text NOT NULL,
            holder_url text NULL,
            acquired_at timestamptz NOT NULL,
            renewed_at timestamptz NOT NULL,
            expires_at timestamptz NOT NULL);
        INSERT INTO leader_lease (id, epoch, holder, holder_url, acquired_at, renewed_at, expires_at)
            VALUES (1, 0, '', NULL, '-infinity', '-infinity', '-infinity') ON CONFLICT (id) DO NOTHING;
        CREATE TABLE IF NOT EXISTS job_inbox (
            id bigserial PRIMARY KEY,
            user_name text NOT NULL,
            idempotency_key text NOT NULL,
            payload text NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now(),
            received_by text NULL,
            job_id bigint NULL,
            error text NULL,
            taken_at timestamptz NULL,
            UNIQUE (user_name, idempotency_key));
        CREATE INDEX IF NOT EXISTS ix_job_inbox_open ON job_inbox (id) WHERE taken_at IS NULL;
        """;

    /// <summary>
    /// The fence: a statement-level trigger on every table. A write from a session that says it leads (gpuc.epoch set)
    /// locks the lease row FOR KEY SHARE and fails unless the lease is still at that epoch. A takeover locks the row FOR
    /// UPDATE, so it waits for the old leader's writes in flight and every later one fails: a stale leader's write either
    /// commits before the takeover (and the new leader reads it when it rebuilds) or not at all. Sessions that do not lead
    /// (a standby taking a submission, migrations) carry no epoch and pass.
    /// </summary>
    public const string CreateFunction = """
        CREATE OR REPLACE FUNCTION gpuc_fence() RETURNS trigger LANGUAGE plpgsql AS $fn$
        DECLARE
            mine text := current_setting('gpuc.epoch', true);
            current_epoch bigint;
        BEGIN
            IF mine IS NULL OR mine = '' THEN
                RETURN NULL;
            END IF;
            SELECT epoch INTO current_epoch FROM leader_lease WHERE id = 1 FOR KEY SHARE;
            IF current_epoch IS DISTINCT FROM mine::bigint THEN
                RAISE EXCEPTION 'gpuc fence: a write under epoch % refused; the lease is at epoch %: this server no longer leads', mine, current_epoch
                    USING ERRCODE = 'P0001';
            END IF;
            RETURN NULL;
        END
        $fn$;
        """;

    /// <summary>Puts the fence on every table of the schema that lacks it (idempotent).</summary>
    public const string AttachAll = """
        DO $do$
        DECLARE t text;
        BEGIN
            FOR t IN
                SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
                  AND c.relname NOT IN ('leader_lease', '__EFMigrationsHistory')
                  AND NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = c.oid AND g.tgname = 'gpuc_fence')
            LOOP
                EXECUTE format('CREATE TRIGGER gpuc_fence BEFORE INSERT OR UPDATE OR DELETE ON %I FOR EACH STATEMENT EXECUTE FUNCTION gpuc_fence()', t);
            END LOOP;
        END
        $do$;
        """;

    public const string Drop = """
        DO $do$
        DECLARE t text;
        BEGIN
            FOR t IN SELECT c.relname FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid WHERE g.tgname = 'gpuc_fence' LOOP
                EXECUTE format('DROP TRIGGER gpuc_fence ON %I', t);
            END LOOP;
        END
        $do$;
        DROP FUNCTION IF EXISTS gpuc_fence();
        DROP TABLE IF EXISTS job_inbox;
        DROP TABLE IF EXISTS leader_lease;
        """;
}
