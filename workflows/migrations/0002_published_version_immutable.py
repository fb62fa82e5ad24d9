"""A database guard: a published WorkflowVersion cannot be updated or deleted.

The API and the admin already refuse; this trigger also stops a direct ``UPDATE`` or
``DELETE`` (a script, a shell, a bug). On PostgreSQL it is a PL/pgSQL trigger raising
SQLSTATE 23001 (restrict_violation, an IntegrityError in Django); on the embedded SQLite
default the same rule is two ``RAISE(ABORT)`` triggers.
"""

from django.db import migrations

GUARDED = ("manifest", "canonical", "digest", "version", "state", "workflow_id", "published_at", "published_by_id")

POSTGRES_FORWARD = """
CREATE OR REPLACE FUNCTION workflows_version_immutable() RETURNS trigger AS $$
BEGIN
    IF OLD.state = 'published' THEN
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'workflow version % is published and cannot be deleted', OLD.version
                USING ERRCODE = 'restrict_violation';
        END IF;
        IF {changed} THEN
            RAISE EXCEPTION 'workflow version % is published and immutable', OLD.version
                USING ERRCODE = 'restrict_violation';
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER workflows_version_immutable
    BEFORE UPDATE OR DELETE ON workflows_workflowversion
    FOR EACH ROW EXECUTE FUNCTION workflows_version_immutable();
""".format(changed=" OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in GUARDED))

POSTGRES_REVERSE = """
DROP TRIGGER IF EXISTS workflows_version_immutable ON workflows_workflowversion;
DROP FUNCTION IF EXISTS workflows_version_immutable();
"""

SQLITE_FORWARD = [
    """
    CREATE TRIGGER workflows_version_immutable_update
    BEFORE UPDATE ON workflows_workflowversion
    FOR EACH ROW WHEN OLD.state = 'published' AND ({changed})
    BEGIN SELECT RAISE(ABORT, 'workflow version is published and immutable'); END;
    """.format(changed=" OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in GUARDED)),
    """
    CREATE TRIGGER workflows_version_immutable_delete
    BEFORE DELETE ON workflows_workflowversion
    FOR EACH ROW WHEN OLD.state = 'published'
    BEGIN SELECT RAISE(ABORT, 'workflow version is published and cannot be deleted'); END;
    """,
]

SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS workflows_version_immutable_update;",
    "DROP TRIGGER IF EXISTS workflows_version_immutable_delete;",
]


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_FORWARD, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE_FORWARD:
            schema_editor.execute(statement)


def reverse(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_REVERSE, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE_REVERSE:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("workflows", "0001_initial")]

    operations = [migrations.RunPython(forward, reverse)]
