"""Native volume snapshots: the cloud's own snapshot API behind a VolumeSnapshotLocation (AWS EBS)."""
