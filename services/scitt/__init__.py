"""The SCITT transparency service's routes (SPEC §12, draft-ietf-scitt-scrapi): registration of
signed statements from registered issuers, COSE receipts, the log keys as COSE keys."""
