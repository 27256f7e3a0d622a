"""The Spark stages of the pipeline: ingest -> features -> block -> extract -> train -> score ->
merge -> evaluate. Each stage is one module with a ``run(ctx) -> StageResult`` function."""
