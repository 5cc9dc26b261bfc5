"""The contract between pods: the anchor's `/internal/v1/entries` wire format (`wire`) and the
client ingest and verify pods call it with (`client`). Imports no service: the anchor serves this
contract, ingest and verify use it, and none of them is needed to read it."""
