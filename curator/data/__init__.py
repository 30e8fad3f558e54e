"""The data side: readers for every input format, ingest, splits and validation."""
