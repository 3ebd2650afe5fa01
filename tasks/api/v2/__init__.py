"""The Huawei VIAS v2-compatible dialect (docs/dialects.md): a thin translator over the task core."""
