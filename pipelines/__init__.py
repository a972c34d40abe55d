"""The runnable jobs (ingest, mix, segment, videoqa, shard, build, demo) and the `pixelrefer` CLI."""
