# Indexes for the dashboard: late runs (SCHEDULED by start time) and each deployment's next run.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('deployments', '0001_initial'),
        ('runs', '0003_flowrun_pool_and_queue_time_indexes'),
        ('workpools', '0001_initial'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='flowrun',
            index=models.Index(fields=['state_type', 'next_scheduled_start_at'], name='flowrun_state_next'),
        ),
        migrations.AddIndex(
            model_name='flowrun',
            index=models.Index(fields=['deployment', 'state_type', 'next_scheduled_start_at'], name='flowrun_deployment_next'),
        ),
    ]
