"""A complete Lambda function: audit events from Kinesis (or a subscription filter, or
Firehose) into PostgreSQL, with poison records dead-lettered to S3-bound JSON Lines.

Deploy with examples/template.yaml. Settings come from the environment:
AUDITSYNC_POSTGRES (a libpq connection string) and AUDITSYNC_DEAD_LETTERS (a path; on
Lambda, /tmp, shipped elsewhere by your own tooling — or pass any DeadLetterSink).
"""

from __future__ import annotations

import os

from auditsync import Pipeline
from auditsync.aws import lambda_handler
from auditsync.filters import EXCLUDE_RDSADMIN
from auditsync.sinks import JsonLinesSink, PostgresSink


def make_pipeline() -> Pipeline:
    """Called once per container, on the first invocation: connections live across calls."""
    return Pipeline(
        PostgresSink(os.environ["AUDITSYNC_POSTGRES"]),
        dead_letter=JsonLinesSink(
            os.environ.get("AUDITSYNC_DEAD_LETTERS", "/tmp/dead-letters.jsonl")
        ),
        filter=EXCLUDE_RDSADMIN,
    )


handler = lambda_handler(make_pipeline)
