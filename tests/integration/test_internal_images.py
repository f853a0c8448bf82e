"""OpenShift internal images end to end: the server, the guide's DPA with the openshift plugin, real registries.

The sandbox serves ImageStreams (image.openshift.io/v1) as a CRD. A real
docker-registry plays the cluster's internal registry; images built here are
pushed to it as a build would, and the ImageStream records them as OpenShift
does. The server, configured by the seed's DataProtectionApplication
(plugins openshift and aws, the location on moto's S3), copies the images
into the location's bucket under ``plugins/``, and a restore into another
namespace copies them back and points the ImageStream at the same digests.
A registry connection that drops in the middle of a layer fails that image
by name; the other images and the rest of the backup are stored.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import Sandbox
from tests.integration.backupkit import unique
from tests.integration.openshiftkit import crd, served
from tests.integration.registrykit import (
    DroppingProxy,
    InternalRegistry,
    build_image,
    imagestream,
    internal_registry,
    manifest_digest,
    push,
)
from tests.integration.s3server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, MotoServer, moto_server
from tests.integration.sandboxapi import eventually
from tests.integration.serverkit import (
    ServerProcess,
    apply_yaml,
    backup,
    get,
    install_crds,
    velero,
    wait_phase,
)

pytestmark = pytest.mark.integration

SEED = Path(__file__).parents[1] / "data" / "seed"
FINISHED = ("Completed", "PartiallyFailed", "Failed", "FailedValidation")
CREDENTIALS = f"[default]\naws_access_key_id={ACCESS_KEY_ID}\naws_secret_access_key={SECRET_ACCESS_KEY}\n"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_server(tmp_path_factory.mktemp("moto-images")) as server:
        yield server


@pytest.fixture(scope="module")
def imagestreams(sandbox: Sandbox) -> Iterator[None]:
    install_crds(sandbox)
    with served(sandbox, crd("image.openshift.io", "imagestreams", "ImageStream", scope="Namespaced")):
        yield


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[InternalRegistry]:
    with internal_registry(tmp_path / "internal") as running:
        yield running


@pytest.fixture
def server(
    sandbox: Sandbox, moto: MotoServer, imagestreams: None, tmp_path: Path
) -> Iterator[tuple[str, str, ServerProcess]]:
    """A server configured by the seed's DPA (openshift and aws plugins), its location on moto."""
    namespace, bucket = unique("adp"), unique("images")
    moto.create_bucket(bucket)
    sandbox.kubectl("create", "namespace", namespace)
    running = ServerProcess(sandbox, namespace, tmp_path / "server.log").start()
    dpa: dict[str, Any] = yaml.safe_load((SEED / "dpa-0403-aws.yaml").read_text())
    assert dpa["spec"]["configuration"]["velero"]["defaultPlugins"] == ["openshift", "aws"]
    dpa["metadata"]["namespace"] = namespace
    storage = dpa["spec"]["backupLocations"][0]["velero"]
    storage["objectStorage"]["bucket"] = bucket
    storage["config"].update({"s3Url": moto.endpoint, "s3ForcePathStyle": "true"})
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "cloud-credentials", "namespace": namespace},
        "data": {"cloud": base64.b64encode(CREDENTIALS.encode()).decode()},
    }
    apply_yaml(sandbox, secret, dpa)
    wait_phase(sandbox, "backupstoragelocations", "default", namespace, ("Available",), timeout=60)
    try:
        yield namespace, bucket, running
    finally:
        running.stop()
        sandbox.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _create_imagestream(sandbox: Sandbox, stream: dict[str, Any]) -> None:
    """Create it, then write its status as OpenShift's registry would (create ignores status)."""
    status = stream.pop("status")
    apply_yaml(
        sandbox,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": stream["metadata"]["namespace"]}},
    )
    stream["metadata"].pop("uid", None)
    apply_yaml(sandbox, stream)
    sandbox.kubectl(
        "patch",
        "imagestreams.image.openshift.io",
        stream["metadata"]["name"],
        "-n",
        stream["metadata"]["namespace"],
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def _image_keys(moto: MotoServer, bucket: str) -> list[str]:
    prefix = "velero/plugins/images/docker/registry/v2/"
    listing = moto.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents") or [])


def _delete_backup(sandbox: Sandbox, namespace: str, name: str) -> None:
    request = f"delete-{name}"
    apply_yaml(sandbox, velero("DeleteBackupRequest", request, namespace, backupName=name))
    done = wait_phase(sandbox, "deletebackuprequests", request, namespace, ("Processed",), timeout=90)
    assert not done["status"].get("errors"), done["status"]
    eventually(lambda: get(sandbox, "backups", name, namespace) is None, timeout=30)


def _object(moto: MotoServer, bucket: str, key: str) -> Any:
    return json.loads(gzip.decompress(moto.client().get_object(Bucket=bucket, Key=key)["Body"].read()))


def test_internal_images_are_backed_up_and_restored_into_another_namespace(
    sandbox: Sandbox,
    moto: MotoServer,
    registry: InternalRegistry,
    server: tuple[str, str, ServerProcess],
    tmp_path: Path,
) -> None:
    namespace, bucket, running = server
    app, moved = unique("build"), unique("moved")
    # Two builds of one application: the tag's history holds both, the newest first.
    first = build_image(tmp_path / "v1", tag="v1")
    second = build_image(tmp_path / "v2", tag="v2")
    old = manifest_digest(push(first, registry.host, f"{app}/web", "latest"))
    new = manifest_digest(push(second, registry.host, f"{app}/web", "latest"))
    stream = imagestream(
        app,
        "web",
        {"latest": [new, old]},
        registry=registry.host,
        public_registry=None,
        spec_tags={"pinned": f"{registry.host}/{app}/web@{old}", "upstream": "quay.io/example/tool:1.0"},
    )
    try:
        _create_imagestream(sandbox, stream)
        apply_yaml(sandbox, backup("with-images", namespace, includedNamespaces=[app]))
        done = wait_phase(sandbox, "backups", "with-images", namespace, FINISHED, timeout=120)
        assert done["status"]["phase"] == "Completed", done["status"]

        # Both images are in the bucket, under the location's plugins/ directory, by digest.
        keys = [o["Key"] for o in moto.client().list_objects_v2(Bucket=bucket)["Contents"]]
        images = _image_keys(moto, bucket)
        for digest in (new, old):
            hexdigest = digest.split(":", 1)[1]
            assert any(f"/{app}/web/_manifests/revisions/sha256/{hexdigest}/link" in key for key in images)
            assert any(f"/blobs/sha256/{hexdigest[:2]}/{hexdigest}/data" in key for key in images)
        for layer in (*first.layers, *second.layers):
            assert any(
                f"/blobs/sha256/{layer.split(':')[1][:2]}/{layer.split(':')[1]}/data" in key for key in images
            )
        # Only the internal registry's images: quay.io's is left where it is.
        assert all("quay.io" not in key and "example/tool" not in key for key in keys)

        restore = velero(
            "Restore",
            "images-back",
            namespace,
            backupName="with-images",
            namespaceMapping={app: moved},
            restoreStatus={"includedResources": ["imagestreams.image.openshift.io"]},
        )
        apply_yaml(sandbox, restore)
        restored = wait_phase(sandbox, "restores", "images-back", namespace, FINISHED, timeout=120)
        assert restored["status"]["phase"] == "Completed", restored["status"]

        # The images are in the target namespace's repository, the same digests, the tag as it was.
        assert manifest_digest(f"{registry.host}/{moved}/web@{new}") == new
        assert manifest_digest(f"{registry.host}/{moved}/web@{old}") == old
        assert manifest_digest(f"{registry.host}/{moved}/web:latest") == new
        created = get(sandbox, "imagestreams.image.openshift.io", "web", moved)
        assert created is not None
        spec_tags = {tag["name"]: tag["from"]["name"] for tag in created["spec"]["tags"]}
        assert spec_tags == {
            "pinned": f"{registry.host}/{moved}/web@{old}",
            "upstream": "quay.io/example/tool:1.0",
        }
        status = created["status"]
        assert status["dockerImageRepository"] == f"{registry.host}/{moved}/web"
        (latest,) = status["tags"]
        assert [item["dockerImageReference"] for item in latest["items"]] == [
            f"{registry.host}/{moved}/web@{new}",
            f"{registry.host}/{moved}/web@{old}",
        ]
        assert _object(moto, bucket, "velero/backups/with-images/with-images-images.json.gz") == [
            {"repository": f"{app}/web", "digest": digest} for digest in (new, old)
        ]

        # A second backup keeps the same images: nothing new is uploaded, and deleting the first keeps them.
        apply_yaml(sandbox, backup("again", namespace, includedNamespaces=[app]))
        assert (
            wait_phase(sandbox, "backups", "again", namespace, FINISHED, timeout=120)["status"]["phase"]
            == "Completed"
        )
        assert _image_keys(moto, bucket) == images
        _delete_backup(sandbox, namespace, "with-images")
        assert _image_keys(moto, bucket) == images
        # Deleting the last backup that keeps them deletes the images and collects their layers.
        _delete_backup(sandbox, namespace, "again")
        left = _image_keys(moto, bucket)
        assert not [key for key in left if "/blobs/" in key], left
        assert not [key for key in left if "/_manifests/revisions/" in key], left
        assert SECRET_ACCESS_KEY not in running.log_path.read_text()
    finally:
        for name in (app, moved):
            sandbox.kubectl("delete", "namespace", name, "--wait=false", check=False)


@contextlib.contextmanager
def dropping_proxy(upstream: str) -> Iterator[DroppingProxy]:
    """The registry behind a proxy that cuts every layer download half-way, served from a thread of its own."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    proxy = DroppingProxy(upstream)
    asyncio.run_coroutine_threadsafe(proxy.__aenter__(), loop).result(10)
    try:
        yield proxy
    finally:
        asyncio.run_coroutine_threadsafe(proxy.__aexit__(None, None, None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_a_registry_that_goes_away_mid_layer_fails_that_image_and_the_backup_goes_on(
    sandbox: Sandbox,
    moto: MotoServer,
    registry: InternalRegistry,
    server: tuple[str, str, ServerProcess],
    tmp_path: Path,
) -> None:
    namespace, bucket, _ = server
    app = unique("cut")
    big = build_image(tmp_path / "big", (2 * 1024 * 1024,))
    small = build_image(tmp_path / "small", (1024,))
    big_digest = manifest_digest(push(big, registry.host, f"{app}/api", "latest"))
    small_digest = manifest_digest(push(small, registry.host, f"{app}/tools", "latest"))
    try:
        with dropping_proxy(registry.host) as proxy:
            # The cluster reaches its registry through the proxy: the connection drops in the big layer.
            for name, digest in (("api", big_digest), ("tools", small_digest)):
                _create_imagestream(
                    sandbox,
                    imagestream(app, name, {"latest": [digest]}, registry=proxy.host, public_registry=None),
                )
            apply_yaml(
                sandbox,
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": app}},
            )
            apply_yaml(sandbox, backup("cut", namespace, includedNamespaces=[app]))
            done = wait_phase(sandbox, "backups", "cut", namespace, FINISHED, timeout=120)
            assert proxy.cuts >= 1
        assert done["status"]["phase"] == "PartiallyFailed", done["status"]
        errors = _object(moto, bucket, "velero/backups/cut/cut-results.gz")["errors"]["namespaces"][app]
        (message,) = errors
        assert f"{app}/api@{big_digest}" in message and f"imagestream {app}/api" in message
        # The other image is in the location, the broken one is not, and every object is stored.
        kept = _object(moto, bucket, "velero/backups/cut/cut-images.json.gz")
        assert kept == [{"repository": f"{app}/tools", "digest": small_digest}]
        links = [key for key in _image_keys(moto, bucket) if "/_manifests/revisions/" in key]
        assert any(f"/{app}/tools/" in key for key in links)
        assert not any(f"/{app}/api/" in key for key in links)
        stored = _object(moto, bucket, "velero/backups/cut/cut-resource-list.json.gz")
        assert sorted(stored["image.openshift.io/v1/ImageStream"]) == [f"{app}/api", f"{app}/tools"]
        assert f"{app}/settings" in stored["v1/ConfigMap"]
    finally:
        sandbox.kubectl("delete", "namespace", app, "--wait=false", check=False)
