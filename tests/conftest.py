"""Fixtures every test package shares: a real S3 server (SeaweedFS) for the session."""

from tests.seaweed import s3_target

__all__ = ["s3_target"]
