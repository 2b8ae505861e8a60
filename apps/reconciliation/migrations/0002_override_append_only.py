from django.db import migrations

# Overrides are the audit trail of staff decisions: a later override supersedes, nothing rewrites one.
FORWARD = """
CREATE FUNCTION reconciliation_override_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'reconciliation_override is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER reconciliation_override_no_update_delete
    BEFORE UPDATE OR DELETE ON reconciliation_override
    FOR EACH ROW EXECUTE FUNCTION reconciliation_override_append_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS reconciliation_override_no_update_delete ON reconciliation_override;
DROP FUNCTION IF EXISTS reconciliation_override_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("reconciliation", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
