"""What the month partitions of 0009 need first (issue 19; apps/reconciliation/partitions.py).

- The tables referring to a visit or a verdict get a copy of its partition column, filled from it:
  versions `current_visit_at`, overrides `visit_at` and `verdict_period_start`; the verdicts get the
  run's `period_start`. Their Django foreign keys to the visits and verdicts stop being constraints
  (`db_constraint=False`): 0009 declares the composite ones in SQL.
- "A facility reports a visit id once" moves from the visits to the key table `VisitKey`, filled with
  one key per visit (a duplicate would fail here, as the old constraint would have).
- `verdict_once_per_run` gets `period_start` (the run's: the same rule).

The overrides' append-only trigger is switched off for the fill (the only UPDATE of their rows here).
Reversible: the copies and the key table go, Django's constraints come back.
"""

import django.db.models.deletion
from django.db import migrations, models

FILL = """
UPDATE reconciliation_verdict t SET period_start = r.period_start
FROM reconciliation_reconciliationrun r WHERE r.id = t.run_id;
UPDATE reconciliation_visitversion t SET current_visit_at = v.visit_at
FROM reconciliation_reportedvisit v WHERE v.id = t.visit_id;
ALTER TABLE reconciliation_override DISABLE TRIGGER reconciliation_override_no_update_delete;
UPDATE reconciliation_override t SET visit_at = v.visit_at, verdict_period_start = d.period_start
FROM reconciliation_reportedvisit v, reconciliation_verdict d
WHERE v.id = t.visit_id AND d.id = t.verdict_id;
ALTER TABLE reconciliation_override ENABLE TRIGGER reconciliation_override_no_update_delete;
"""

KEYS = """
INSERT INTO reconciliation_visitkey (visit_id, facility_id, facility_visit_id, visit_at)
SELECT id, facility_id, facility_visit_id, visit_at FROM reconciliation_reportedvisit
ORDER BY facility_id, facility_visit_id
"""


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0006_slot_max_minutes"),
        ("reconciliation", "0007_choice_labels_from_the_catalogue"),
    ]

    operations = [
        migrations.AddField(
            model_name="verdict",
            name="period_start",
            field=models.DateField(null=True),
        ),
        migrations.AddField(
            model_name="visitversion",
            name="current_visit_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.AddField(
            model_name="override",
            name="verdict_period_start",
            field=models.DateField(null=True),
        ),
        migrations.AddField(
            model_name="override",
            name="visit_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.RunSQL(FILL, migrations.RunSQL.noop),
        migrations.AlterField(
            model_name="verdict",
            name="period_start",
            field=models.DateField(),
        ),
        migrations.AlterField(
            model_name="visitversion",
            name="current_visit_at",
            field=models.DateTimeField(),
        ),
        migrations.AlterField(
            model_name="override",
            name="verdict_period_start",
            field=models.DateField(),
        ),
        migrations.AlterField(
            model_name="override",
            name="visit_at",
            field=models.DateTimeField(),
        ),
        migrations.AlterField(
            model_name="visitversion",
            name="visit",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="versions",
                to="reconciliation.reportedvisit",
            ),
        ),
        migrations.AlterField(
            model_name="override",
            name="visit",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="overrides",
                to="reconciliation.reportedvisit",
            ),
        ),
        migrations.AlterField(
            model_name="override",
            name="verdict",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="overrides",
                to="reconciliation.verdict",
            ),
        ),
        migrations.RemoveConstraint(
            model_name="verdict",
            name="verdict_once_per_run",
        ),
        migrations.AddConstraint(
            model_name="verdict",
            constraint=models.UniqueConstraint(
                fields=("run", "visit", "period_start"), name="verdict_once_per_run"
            ),
        ),
        migrations.RemoveConstraint(
            model_name="reportedvisit",
            name="visit_once_per_facility",
        ),
        migrations.CreateModel(
            name="VisitKey",
            fields=[
                (
                    "visit",
                    models.OneToOneField(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="key",
                        serialize=False,
                        to="reconciliation.reportedvisit",
                    ),
                ),
                ("facility_visit_id", models.CharField(max_length=64)),
                ("visit_at", models.DateTimeField()),
                (
                    "facility",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="catalog.facility",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("facility", "facility_visit_id"), name="visit_once_per_facility"
                    )
                ],
            },
        ),
        migrations.RunSQL(KEYS, migrations.RunSQL.noop),
    ]
