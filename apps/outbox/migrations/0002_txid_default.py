from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("outbox", "0001_initial")]

    operations = [
        # The writing transaction's id, taken by the database itself (see OutboxEvent docstring).
        migrations.RunSQL(
            "ALTER TABLE outbox_outboxevent ALTER COLUMN txid SET DEFAULT (pg_current_xact_id()::text::bigint)",
            "ALTER TABLE outbox_outboxevent ALTER COLUMN txid SET DEFAULT 0",
        ),
    ]
