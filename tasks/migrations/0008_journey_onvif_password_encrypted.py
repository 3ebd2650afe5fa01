"""ONVIF passwords encrypted at rest (vias/lib/crypto.py): the column widened for the token, and the
passwords already stored in the clear encrypted with the key derived from SECRET_KEY."""

from django.db import migrations

import vias.lib.crypto


def encrypt_stored(apps, schema_editor):
    channels = apps.get_model("tasks", "VideoChannel").objects.using(schema_editor.connection.alias)
    # Read through the field: a value written before it was encrypted reads as it is; written
    # back through it, it is encrypted.
    for pk, password in channels.exclude(onvif_password="").values_list("pk", "onvif_password"):
        channels.filter(pk=pk).update(onvif_password=password)


def decrypt_stored(apps, schema_editor):
    model = apps.get_model("tasks", "VideoChannel")
    channels = model.objects.using(schema_editor.connection.alias)
    table = schema_editor.quote_name(model._meta.db_table)
    with schema_editor.connection.cursor() as cursor:
        for pk, password in channels.exclude(onvif_password="").values_list("pk", "onvif_password"):
            # Past the field (which would encrypt it again): the plain text, as before.
            cursor.execute(f"UPDATE {table} SET onvif_password = %s WHERE id = %s", [password, pk])


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0007_journey_ptz_channels"),
    ]

    operations = [
        migrations.AlterField(
            model_name="videochannel",
            name="onvif_password",
            field=vias.lib.crypto.EncryptedCharField(
                blank=True, max_length=787, plain_max_length=128, verbose_name="ONVIF password"
            ),
        ),
        migrations.RunPython(encrypt_stored, decrypt_stored),
    ]
