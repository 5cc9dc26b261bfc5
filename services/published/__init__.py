"""The read side of the published log: the bucket's layout (`layout`, every object key in one
place), the log read back from it (`reader.LogReader`) and the anchored checkpoints
(`anchors.AnchorStore`, which the anchor's committer also writes through). Imports no service."""
