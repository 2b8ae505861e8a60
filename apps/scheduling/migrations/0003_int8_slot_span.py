"""The overlap rule's span as int8range (whole seconds) instead of numrange.

A GiST index over numrange compares numerics in every penalty and split: building it was most of a
national data load, and every slot publication pays it (docs/performance.md, "Generator"). Over
int8range the same index builds ~3.5x faster. Seconds are enough for appointment slots: both ends are
rounded down to the second, so slots that touch never conflict (whatever their fractions of a second)
and every overlap of a second or more is refused; only an overlap shorter than a second could pass.

The constraint is dropped and added again around the function (it depends on it): at national scale
that rebuild locks the slot table for the index build, so it belongs before production data exists.
"""

import django.contrib.postgres.constraints
from django.db import migrations, models

import apps.scheduling.models

NUMRANGE = """
CREATE FUNCTION cer_slot_span(schedule_id bigint, s timestamptz, e timestamptz) RETURNS numrange
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT numrange(schedule_id * 10000000000::numeric + extract(epoch FROM s),
                   schedule_id * 10000000000::numeric + extract(epoch FROM e)) $$
"""

# 10^10 s is year 2286: schedule ids up to 9.2 * 10^8 fit a bigint.
INT8RANGE = """
CREATE FUNCTION cer_slot_span(schedule_id bigint, s timestamptz, e timestamptz) RETURNS int8range
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT int8range(schedule_id * 10000000000 + floor(extract(epoch FROM s))::bigint,
                    schedule_id * 10000000000 + floor(extract(epoch FROM e))::bigint) $$
"""

DROP = "DROP FUNCTION cer_slot_span(bigint, timestamptz, timestamptz)"


def constraint():
    return django.contrib.postgres.constraints.ExclusionConstraint(
        condition=models.Q(("status", "cancelled"), _negated=True),
        expressions=[(apps.scheduling.models.SlotSpan("schedule", "start", "end"), "&&")],
        name="slot_no_overlap",
    )


class Migration(migrations.Migration):
    dependencies = [
        ("scheduling", "0002_search_index_order"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="slot", name="slot_no_overlap"),
        migrations.RunSQL([DROP, INT8RANGE], [DROP, NUMRANGE]),
        migrations.AddConstraint(model_name="slot", constraint=constraint()),
    ]
