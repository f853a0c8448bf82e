"""Control-plane protection: etcd snapshots, membership and disaster recovery."""
