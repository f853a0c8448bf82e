"""The sandbox cluster: a Kubernetes API server that stores objects in a real etcd.

It is test infrastructure and the demo's embedded default, never a production
path. Every difference from kube-apiserver's observable behaviour is a bug.
"""
