"""The cluster itself: control-plane certificates now; CSRs, graceful shutdown and restart, health next.

It reaches the API through ``strongroom.kube`` only and never imports backup,
restore or etcd: keeping a cluster restartable is a concern of its own.
"""
