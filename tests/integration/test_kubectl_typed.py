"""kubectl commands that send protobuf bodies (typed clients) against the sandbox.

The oracle is kubectl itself: `--dry-run=client -o json` prints the object it
would send, and what the sandbox stores must contain all of it.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import Sandbox, kubectl_binary

from strongroom.sandbox import protobuf

pytestmark = pytest.mark.integration


@pytest.fixture
def ns(sandbox: Sandbox) -> Iterator[str]:
    name = f"pb-{uuid.uuid4().hex[:8]}"
    sandbox.kubectl("create", "namespace", name)
    yield name
    sandbox.kubectl("delete", "namespace", name, "--wait=false", check=False)


def empty(value: Any) -> bool:
    """Go's zero values, e.g. `metadata: {creationTimestamp: null}`, carry nothing to compare."""
    if isinstance(value, dict):
        return all(empty(v) for v in value.values())
    return value is None or value == []


def contained(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where `actual` lacks or differs from what `expected` sets (empty values aside)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {actual!r}"]
        problems = []
        for key, value in expected.items():
            if empty(value):
                continue
            problems += contained(value, actual.get(key), f"{path}.{key}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {expected!r}, got {actual!r}"]
        return [
            p
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for p in contained(e, a, f"{path}[{i}]")
        ]
    return [] if expected == actual else [f"{path}: expected {expected!r}, got {actual!r}"]


GENERATORS = [
    ("configmap", "cm1", ["create", "configmap", "cm1", "--from-literal=a=b", "--from-literal=empty="]),
    ("secret", "s1", ["create", "secret", "generic", "s1", "--from-literal=user=app", "--from-literal=pw=x y"]),
    ("secret", "d1", ["create", "secret", "docker-registry", "d1", "--docker-server=r.io", "--docker-username=u",
                      "--docker-password=p"]),
    ("serviceaccount", "sa1", ["create", "serviceaccount", "sa1"]),
    ("deployment", "dep1", ["create", "deployment", "dep1", "--image=nginx:1.27", "--replicas=0", "--port=80"]),
    ("job", "job1", ["create", "job", "job1", "--image=busybox", "--", "echo", "hi"]),
    ("cronjob", "cj1", ["create", "cronjob", "cj1", "--image=busybox", "--schedule=*/5 * * * *", "--", "date"]),
    ("service", "svc1", ["create", "service", "clusterip", "svc1", "--tcp=80:8080"]),
    ("role", "r1", ["create", "role", "r1", "--verb=get,list", "--resource=pods,configmaps"]),
    ("rolebinding", "rb1", ["create", "rolebinding", "rb1", "--role=r1", "--user=bob", "--group=devs"]),
    ("resourcequota", "q1", ["create", "quota", "q1", "--hard=pods=5,requests.cpu=2"]),
    ("poddisruptionbudget", "pdb1", ["create", "pdb", "pdb1", "--selector=app=x", "--min-available=50%"]),
    ("ingress", "ing1", ["create", "ingress", "ing1", "--rule=foo.com/bar*=svc1:80"]),
]  # fmt: skip


@pytest.mark.parametrize(("resource", "name", "command"), GENERATORS, ids=[g[1] for g in GENERATORS])
def test_generator_commands_store_what_kubectl_sends(
    sandbox: Sandbox, ns: str, resource: str, name: str, command: list[str]
) -> None:
    # Flags go before a "--" that starts the container's command.
    split = command.index("--") if "--" in command else len(command)
    dry_run = [*command[:split], "-n", ns, "--dry-run=client", "-o", "json", *command[split:]]
    expected = json.loads(sandbox.kubectl(*dry_run).stdout)
    created = sandbox.kubectl(*command[:split], "-n", ns, *command[split:], check=False)
    assert created.returncode == 0, created.stderr
    stored = sandbox.kubectl_json("get", resource, name, "-n", ns)
    expected["metadata"]["namespace"] = ns
    assert contained(expected, stored) == []


def test_cluster_scoped_generators(sandbox: Sandbox) -> None:
    suffix = uuid.uuid4().hex[:6]
    for resource, command in (
        ("namespace", ["create", "namespace", f"gen-{suffix}"]),
        ("clusterrole", ["create", "clusterrole", f"cr-{suffix}", "--verb=get", "--resource=nodes"]),
        ("clusterrolebinding", ["create", "clusterrolebinding", f"crb-{suffix}", f"--clusterrole=cr-{suffix}",
                                "--group=g1"]),
        ("priorityclass", ["create", "priorityclass", f"pc-{suffix}", "--value=0", "--description=zero"]),
    ):  # fmt: skip
        expected = json.loads(sandbox.kubectl(*command, "--dry-run=client", "-o", "json").stdout)
        sandbox.kubectl(*command)
        stored = sandbox.kubectl_json("get", resource, command[2])
        assert contained(expected, stored) == [], resource
    # A zero that Go would omit but the field keeps (PriorityClass.value has no omitempty).
    assert sandbox.kubectl_json("get", "priorityclass", f"pc-{suffix}")["value"] == 0
    sandbox.kubectl("delete", "namespace", f"gen-{suffix}", "--wait=false")


def test_secret_bytes_survive_the_protobuf_path(sandbox: Sandbox, ns: str, tmp_path: Path) -> None:
    blob = bytes(range(256)) * 4
    (tmp_path / "blob.bin").write_bytes(blob)
    sandbox.kubectl(
        "create", "secret", "generic", "binary", "-n", ns, f"--from-file=blob={tmp_path / 'blob.bin'}"
    )
    stored = sandbox.kubectl_json("get", "secret", "binary", "-n", ns)
    assert base64.b64decode(stored["data"]["blob"]) == blob


def test_deployment_with_zero_replicas_keeps_zero(sandbox: Sandbox, ns: str) -> None:
    sandbox.kubectl("create", "deployment", "idle", "-n", ns, "--image=nginx", "--replicas=0")
    assert sandbox.kubectl_json("get", "deployment", "idle", "-n", ns)["spec"]["replicas"] == 0


def test_auth_can_i_and_whoami(sandbox: Sandbox) -> None:
    assert sandbox.kubectl("auth", "can-i", "create", "pods").stdout.strip() == "yes"
    assert sandbox.kubectl("auth", "can-i", "delete", "nodes", "-A").stdout.strip() == "yes"
    whoami = sandbox.kubectl("auth", "whoami", "-o", "json").stdout
    assert json.loads(whoami)["status"]["userInfo"]["username"] == "strongroom-admin"
    rules = sandbox.kubectl("auth", "can-i", "--list").stdout
    assert "*.*" in rules


def test_certificate_approve_and_deny(sandbox: Sandbox, tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    request = tmp_path / "r.csr"
    subprocess.run(
        ["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-subj",
         "/CN=system:node:n1/O=system:nodes", "-out", str(request)],
        check=True, capture_output=True,
    )  # fmt: skip
    names = [f"csr-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    for name in names:
        manifest = {
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"name": name},
            "spec": {
                "request": base64.b64encode(request.read_bytes()).decode(),
                "signerName": "kubernetes.io/kube-apiserver-client",
                "usages": ["client auth"],
            },
        }
        sandbox.kubectl("create", "-f", "-", input=json.dumps(manifest))
    assert "approved" in sandbox.kubectl("certificate", "approve", names[0]).stdout
    assert "denied" in sandbox.kubectl("certificate", "deny", names[1]).stdout
    approved = sandbox.kubectl_json("get", "csr", names[0])
    denied = sandbox.kubectl_json("get", "csr", names[1])
    assert [c["type"] for c in approved["status"]["conditions"]] == ["Approved"]
    assert [c["type"] for c in denied["status"]["conditions"]] == ["Denied"]
    assert approved["spec"]["request"] == base64.b64encode(request.read_bytes()).decode()
    assert approved["spec"]["usages"] == ["client auth"]


def test_a_typed_body_the_sandbox_cannot_decode_is_refused_not_truncated(sandbox: Sandbox, ns: str) -> None:
    # A protobuf envelope (magic, TypeMeta, raw) of a kind the sandbox has no message for.
    type_meta = b"\x0a\x02v1\x12\x0bFrobnicator"
    body = b"k8s\x00" + b"\x0a" + bytes([len(type_meta)]) + type_meta + b"\x12\x02\x0a\x00"
    kubeconfig = yaml.safe_load(Path(sandbox.kubeconfig).read_text())
    token = kubeconfig["users"][0]["user"]["token"]
    ca = base64.b64decode(kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    request = urllib.request.Request(
        f"{sandbox.server}/api/v1/namespaces/{ns}/configmaps",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/vnd.kubernetes.protobuf"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, context=ssl.create_default_context(cadata=ca), timeout=10)
    assert caught.value.code == 415
    status = json.loads(caught.value.read())
    assert "protobuf bodies of kind Frobnicator are not known to the sandbox" in status["message"]


# ------------------------------------------------- the exact body kubectl sends


class Recorder:
    """kubectl through a recording plain-HTTP proxy to the sandbox: what protobuf bodies did it post?

    The decoded body is compared with kubectl's `--dry-run=client -o json` exactly, before the
    server's defaulting and the fields it sets, which `contained` has to look past.
    """

    def __init__(self, sandbox: Sandbox, directory: Path) -> None:
        kubeconfig = yaml.safe_load(Path(sandbox.kubeconfig).read_text())
        token = kubeconfig["users"][0]["user"]["token"]
        ca = base64.b64decode(kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
        context = ssl.create_default_context(cadata=ca)
        self.bodies: list[tuple[str, str, bytes]] = []
        recorder = self

        class Forward(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if body is not None and self.headers.get("Content-Type") == protobuf.CONTENT_TYPE:
                    recorder.bodies.append((self.command, self.path, body))
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "content-type")}
                # kubectl sends no bearer token over plain HTTP: the proxy adds it.
                headers["Authorization"] = f"Bearer {token}"
                request = urllib.request.Request(
                    sandbox.server + self.path, data=body, method=self.command, headers=headers
                )
                try:
                    with urllib.request.urlopen(request, context=context, timeout=30) as answer:
                        status, media, data = answer.status, answer.headers.get("Content-Type"), answer.read()
                except urllib.error.HTTPError as refused:
                    status, media, data = refused.code, refused.headers.get("Content-Type"), refused.read()
                self.send_response(status)
                self.send_header("Content-Type", media or "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forward)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.kubeconfig = directory / "recorded.kubeconfig"
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": "c", "cluster": {"server": f"http://127.0.0.1:{self.server.server_port}"}}
                    ],
                    "users": [{"name": "u", "user": {}}],
                    "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                    "current-context": "c",
                }
            )
        )

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        return subprocess.run(
            [kubectl_binary(), *args], capture_output=True, text=True, env=env, timeout=60, check=False
        )

    def posted(self, resource: str) -> bytes:
        (body,) = [
            b for method, path, b in self.bodies if method == "POST" and path.split("?")[0].endswith(resource)
        ]
        return body

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def recorder(sandbox: Sandbox, tmp_path: Path) -> Iterator[Recorder]:
    recording = Recorder(sandbox, tmp_path)
    yield recording
    recording.close()


def as_decoded(sent: Any, top: bool = True) -> Any:
    """kubectl's JSON as the decoder gives it: Go's `null`s (nil pointers and slices, zero times) left
    out, and the empty top-level status and Deployment strategy, which the server resets and defaults."""
    if isinstance(sent, list):
        return [as_decoded(item, False) for item in sent]
    if not isinstance(sent, dict):
        return sent
    out = {key: as_decoded(value, False) for key, value in sent.items() if value is not None}
    if top:
        if out.get("status") == {}:
            del out["status"]
        if out.get("kind") == "Deployment" and out.get("spec", {}).get("strategy") == {}:
            del out["spec"]["strategy"]
    return out


# The pod template of a control-plane backup CronJob, much like `strongroom install --etcd-backup-schedule`
# renders, with the rest of what such jobs use. Suspended: the test is about what is stored.
BACKUP_CRONJOB = """
apiVersion: batch/v1
kind: CronJob
metadata:
  name: backup
  labels: {app: backup}
spec:
  schedule: "0 */6 * * *"
  concurrencyPolicy: Forbid
  successfulJobsHistoryLimit: 0
  jobTemplate:
    metadata:
      labels: {app: backup, role: etcd}
    spec:
      suspend: true
      backoffLimit: 0
      ttlSecondsAfterFinished: 600
      template:
        metadata:
          labels: {app: backup}
          annotations: {note: from the cronjob}
        spec:
          restartPolicy: Never
          hostNetwork: true
          dnsPolicy: ClusterFirstWithHostNet
          priorityClassName: system-node-critical
          automountServiceAccountToken: false
          terminationGracePeriodSeconds: 0
          securityContext:
            fsGroup: 0
            runAsNonRoot: false
            supplementalGroups: [0, 1000]
            seccompProfile: {type: RuntimeDefault}
          affinity:
            nodeAffinity:
              requiredDuringSchedulingIgnoredDuringExecution:
                nodeSelectorTerms:
                - matchExpressions:
                  - {key: node-role.kubernetes.io/control-plane, operator: Exists}
                - matchExpressions:
                  - {key: node-role.kubernetes.io/master, operator: Exists}
              preferredDuringSchedulingIgnoredDuringExecution:
              - weight: 10
                preference:
                  matchExpressions: [{key: zone, operator: In, values: [a, b]}]
            podAntiAffinity:
              preferredDuringSchedulingIgnoredDuringExecution:
              - weight: 50
                podAffinityTerm:
                  topologyKey: kubernetes.io/hostname
                  labelSelector: {matchLabels: {app: backup}}
          tolerations:
          - {key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}
          - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 0}
          - {operator: Exists}
          topologySpreadConstraints:
          - maxSkew: 1
            topologyKey: kubernetes.io/hostname
            whenUnsatisfiable: ScheduleAnyway
            labelSelector: {matchLabels: {app: backup}}
          hostAliases: [{ip: 127.0.0.1, hostnames: [etcd.local]}]
          dnsConfig:
            nameservers: [1.1.1.1]
            options: [{name: ndots, value: "2"}, {name: edns0}]
          initContainers:
          - name: init
            image: busybox
            command: [sh, -c, "true"]
            restartPolicy: Always
          containers:
          - name: backup
            image: registry.example/backup:1.0
            imagePullPolicy: IfNotPresent
            command: [/bin/backup]
            args: [--all, ""]
            workingDir: /work
            ports:
            - {name: metrics, containerPort: 9090, protocol: TCP}
            env:
            - {name: PLAIN, value: x}
            - {name: EMPTY, value: ""}
            - name: NODE
              valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
            - name: PASSWORD
              valueFrom: {secretKeyRef: {name: creds, key: password, optional: false}}
            - name: COLOR
              valueFrom: {configMapKeyRef: {name: settings, key: color}}
            - name: MEMORY
              valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}
            - name: CPU
              valueFrom: {resourceFieldRef: {containerName: backup, resource: requests.cpu}}
            envFrom:
            - {prefix: CFG_, configMapRef: {name: settings}}
            - secretRef: {name: creds, optional: true}
            securityContext:
              privileged: true
              runAsUser: 0
              runAsGroup: 0
              readOnlyRootFilesystem: false
              allowPrivilegeEscalation: true
              capabilities: {add: [SYS_ADMIN], drop: [ALL]}
              seLinuxOptions: {level: "s0:c1,c2"}
              procMount: Default
            resources:
              requests: {cpu: 100m, memory: 128Mi}
              limits: {cpu: "1", memory: 1Gi, ephemeral-storage: 2Gi}
            readinessProbe:
              exec: {command: [cat, /tmp/ready]}
              initialDelaySeconds: 5
              periodSeconds: 10
            livenessProbe:
              httpGet: {path: /healthz, port: metrics, scheme: HTTP, httpHeaders: [{name: X-Probe, value: "1"}]}
              failureThreshold: 3
            startupProbe:
              httpGet: {path: /started, port: 9090}
              terminationGracePeriodSeconds: 5
            lifecycle:
              preStop:
                exec: {command: [sh, -c, sleep 1]}
              postStart:
                tcpSocket: {port: 9090}
            terminationMessagePath: /dev/termination-log
            terminationMessagePolicy: FallbackToLogsOnError
            volumeMounts:
            - {name: etc-kubernetes, mountPath: /host/etc/kubernetes, readOnly: true}
            - {name: scratch, mountPath: /scratch}
            - {name: token, mountPath: /var/run/secrets/tokens}
            - {name: config, mountPath: /config, subPath: app.conf}
            - {name: podinfo, mountPath: /podinfo}
            - {name: data, mountPath: /data}
          - name: sidecar
            image: busybox
            stdin: true
            tty: true
            readinessProbe:
              tcpSocket: {port: 8080}
            livenessProbe:
              grpc: {port: 9000}
          volumes:
          - name: etc-kubernetes
            hostPath: {path: /etc/kubernetes, type: Directory}
          - name: scratch
            emptyDir: {}
          - name: memory
            emptyDir: {medium: Memory, sizeLimit: 64Mi}
          - name: token
            projected:
              defaultMode: 0440
              sources:
              - serviceAccountToken: {audience: etcd, expirationSeconds: 3600, path: token}
              - configMap:
                  name: settings
                  items: [{key: color, path: color.txt, mode: 0400}]
              - secret: {name: creds, optional: true}
              - downwardAPI:
                  items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]
          - name: config
            configMap: {name: settings, defaultMode: 0644}
          - name: creds
            secret: {secretName: creds, items: [{key: password, path: pw}], optional: false}
          - name: podinfo
            downwardAPI:
              items:
              - {path: cpu, resourceFieldRef: {containerName: backup, resource: limits.cpu, divisor: 1m}}
          - name: data
            persistentVolumeClaim: {claimName: data, readOnly: true}
          - name: nfs
            nfs: {server: nfs.example, path: /exports}
          - name: inline
            csi: {driver: inline.storage.example, volumeAttributes: {size: 1Gi}, nodePublishSecretRef: {name: creds}}
          - name: claim
            ephemeral:
              volumeClaimTemplate:
                metadata: {labels: {type: scratch}}
                spec:
                  accessModes: [ReadWriteOnce]
                  storageClassName: standard
                  resources: {requests: {storage: 1Gi}}
"""

# Every other PodSpec field kubectl 1.32 knows, and more of the Job's, with zero values where a
# pointer or a field without omitempty must keep them.
EVERY_FIELD_CRONJOB = """
apiVersion: batch/v1
kind: CronJob
metadata:
  name: every-field
spec:
  schedule: "@hourly"
  timeZone: Etc/UTC
  startingDeadlineSeconds: 0
  suspend: true
  jobTemplate:
    spec:
      suspend: true
      parallelism: 2
      completions: 4
      completionMode: Indexed
      backoffLimitPerIndex: 1
      maxFailedIndexes: 0
      podReplacementPolicy: Failed
      activeDeadlineSeconds: 3600
      podFailurePolicy:
        rules:
        - action: FailIndex
          onExitCodes: {containerName: main, operator: In, values: [0, 42]}
        - action: Ignore
          onPodConditions: [{type: DisruptionTarget, status: "True"}]
      template:
        spec:
          restartPolicy: Never
          activeDeadlineSeconds: 0
          nodeSelector: {disk: ssd, empty: ""}
          serviceAccountName: runner
          serviceAccount: runner
          nodeName: node-0
          hostPID: true
          hostIPC: true
          shareProcessNamespace: false
          imagePullSecrets: [{name: pull}]
          hostname: box
          subdomain: sub
          schedulerName: my-scheduler
          priority: 0
          preemptionPolicy: Never
          runtimeClassName: runc
          enableServiceLinks: false
          setHostnameAsFQDN: false
          hostUsers: true
          os: {name: linux}
          overhead: {cpu: 10m}
          readinessGates: [{conditionType: example.com/ready}]
          schedulingGates: [{name: example.com/gate}]
          resourceClaims: [{name: gpu, resourceClaimTemplateName: gpu-template}]
          securityContext:
            runAsUser: 1000
            runAsGroup: 0
            fsGroupChangePolicy: OnRootMismatch
            supplementalGroupsPolicy: Strict
            sysctls: [{name: net.core.somaxconn, value: "1024"}]
            seLinuxOptions: {user: u, role: r, type: t, level: l}
            windowsOptions: {runAsUserName: ContainerUser, hostProcess: false}
            appArmorProfile: {type: Localhost, localhostProfile: prof}
            seccompProfile: {type: Localhost, localhostProfile: profiles/audit.json}
          affinity:
            podAffinity:
              requiredDuringSchedulingIgnoredDuringExecution:
              - topologyKey: zone
                labelSelector:
                  matchExpressions: [{key: app, operator: In, values: [db]}]
                namespaceSelector: {}
                namespaces: [other]
                matchLabelKeys: [pod-template-hash]
            nodeAffinity:
              requiredDuringSchedulingIgnoredDuringExecution:
                nodeSelectorTerms:
                - matchFields: [{key: metadata.name, operator: NotIn, values: [node-9]}]
          topologySpreadConstraints:
          - maxSkew: 2
            topologyKey: zone
            whenUnsatisfiable: DoNotSchedule
            minDomains: 1
            nodeAffinityPolicy: Honor
            nodeTaintsPolicy: Ignore
            matchLabelKeys: [pod-template-hash]
          initContainers:
          - name: prepare
            image: busybox
            stdin: true
            stdinOnce: true
            resources:
              claims: [{name: gpu, request: one}]
          containers:
          - name: main
            image: busybox
            volumeDevices: [{name: block, devicePath: /dev/xvda}]
            resizePolicy:
            - {resourceName: cpu, restartPolicy: NotRequired}
            - {resourceName: memory, restartPolicy: RestartContainer}
            resources:
              limits: {cpu: "0", memory: 64Mi}
            lifecycle:
              preStop:
                sleep: {seconds: 0}
              postStart:
                httpGet: {host: 127.0.0.1, port: 8080, path: /started}
            readinessProbe:
              grpc: {port: 9000, service: health}
              successThreshold: 1
            livenessProbe:
              tcpSocket: {host: localhost, port: http}
            securityContext:
              privileged: false
              runAsNonRoot: true
              readOnlyRootFilesystem: true
              allowPrivilegeEscalation: false
              capabilities: {drop: [ALL]}
              seccompProfile: {type: Unconfined}
              appArmorProfile: {type: RuntimeDefault}
              windowsOptions: {gmsaCredentialSpecName: spec}
            volumeMounts:
            - {name: git, mountPath: /src, mountPropagation: HostToContainer, subPathExpr: $(POD_NAME)}
            - {name: image, mountPath: /image, readOnly: true, recursiveReadOnly: Enabled}
            env:
            - name: POD_NAME
              valueFrom: {fieldRef: {apiVersion: v1, fieldPath: metadata.name}}
          volumes:
          - name: block
            persistentVolumeClaim: {claimName: block}
          - name: git
            gitRepo: {repository: "https://example.invalid/r.git", revision: main, directory: .}
          - name: image
            image: {reference: "registry.example/data:1", pullPolicy: IfNotPresent}
          - name: iscsi
            iscsi:
              targetPortal: "192.0.2.1:3260"
              iqn: iqn.2001-04.com.example:storage
              lun: 0
              readOnly: true
              secretRef: {name: chap}
              chapAuthSession: true
          - name: fc
            fc: {targetWWNs: [500a0982991b8dc5], lun: 0, fsType: ext4}
          - name: rbd
            rbd: {monitors: ["192.0.2.2:6789"], image: img, pool: rbd, user: admin, secretRef: {name: ceph}}
          - name: cephfs
            cephfs: {monitors: ["192.0.2.2:6789"], path: /, readOnly: false}
          - name: bundle
            projected:
              sources:
              - clusterTrustBundle:
                  signerName: example.com/signer
                  labelSelector: {matchLabels: {a: b}}
                  path: ca.pem
                  optional: true
              - downwardAPI:
                  items: [{path: memory, resourceFieldRef: {containerName: main, resource: limits.memory}}]
"""


@pytest.mark.parametrize("manifest", [BACKUP_CRONJOB, EVERY_FIELD_CRONJOB], ids=["backup", "every-field"])
def test_create_job_from_a_cronjob_stores_the_whole_pod_template(
    sandbox: Sandbox, ns: str, recorder: Recorder, manifest: str
) -> None:
    name = yaml.safe_load(manifest)["metadata"]["name"]
    sandbox.kubectl("apply", "-n", ns, "-f", "-", input=manifest)
    command = ["create", "job", "run-1", f"--from=cronjob/{name}", "-n", ns]
    expected = json.loads(sandbox.kubectl(*command, "--dry-run=client", "-o", "json").stdout)

    created = recorder.kubectl(*command)
    assert created.returncode == 0, created.stderr
    assert protobuf.decode(recorder.posted("/jobs")) == as_decoded(expected)

    stored = sandbox.kubectl_json("get", "job", "run-1", "-n", ns)
    assert contained(expected, stored) == []
    # What `contained` passes over as empty: Go's zero values that the JSON keeps.
    sent = expected["spec"]["template"]["spec"]
    pod = stored["spec"]["template"]["spec"]
    assert pod["volumes"] == as_decoded(sent["volumes"], top=False)
    for index, container in enumerate(sent["containers"]):
        assert pod["containers"][index]["resources"] == container["resources"]
    if name == "backup":
        assert pod["volumes"][1] == {"name": "scratch", "emptyDir": {}}
        assert pod["containers"][1]["resources"] == {}


GENERATED_TEMPLATES = [
    ("deployments", ["create", "deployment", "web", "--image=nginx:1.27", "--replicas=0", "--port=80"], []),
    ("jobs", ["create", "job", "once", "--image=busybox"], ["--", "echo", "hi"]),
    ("cronjobs", ["create", "cronjob", "often", "--image=busybox", "--schedule=*/5 * * * *"], ["--", "date"]),
]


@pytest.mark.parametrize(
    ("resource", "command", "tail"), GENERATED_TEMPLATES, ids=[g[0] for g in GENERATED_TEMPLATES]
)
def test_generator_bodies_decode_exactly_as_kubectl_prints_them(
    sandbox: Sandbox, ns: str, recorder: Recorder, resource: str, command: list[str], tail: list[str]
) -> None:
    expected = json.loads(sandbox.kubectl(*command, "-n", ns, "--dry-run=client", "-o", "json", *tail).stdout)
    created = recorder.kubectl(*command, "-n", ns, *tail)
    assert created.returncode == 0, created.stderr
    assert protobuf.decode(recorder.posted(f"/{resource}")) == as_decoded(expected)
