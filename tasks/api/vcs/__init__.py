"""The VCS-SPS compute-task dialect (docs/dialects.md): a thin translator over the task core."""
