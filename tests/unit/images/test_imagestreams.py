"""Which images of an ImageStream are internal, where their copies live, and the ImageStream after a restore."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from strongroom.errors import UsageError
from strongroom.images.imagestreams import (
    OPENSHIFT_INTERNAL_REGISTRY,
    ImageReference,
    backup_reference,
    backup_repository,
    internal_hosts,
    internal_images,
    rewrite_for_restore,
)

INTERNAL = OPENSHIFT_INTERNAL_REGISTRY
ROUTE = "default-route-openshift-image-registry.apps.example.com"
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64
D4 = "sha256:" + "4" * 64
EXTERNAL = "sha256:" + "e" * 64


def item(reference: str, digest: str | None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "created": "2024-05-01T10:00:00Z",
        "dockerImageReference": reference,
        "generation": 1,
    }
    if digest is not None:
        found["image"] = digest
    return found


def stream(**overrides: Any) -> dict[str, Any]:
    """shop/web: latest was D2 (and before that D1), v1 is D1, base comes from quay.io, tools from another
    namespace's stream; a spec tag pins D3 in the internal registry."""
    own = f"{INTERNAL}/shop/web"
    result: dict[str, Any] = {
        "apiVersion": "image.openshift.io/v1",
        "kind": "ImageStream",
        "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "42"},
        "spec": {
            "lookupPolicy": {"local": False},
            "tags": [
                {"name": "pinned", "from": {"kind": "DockerImage", "name": f"{own}@{D3}"}},
                {"name": "base", "from": {"kind": "DockerImage", "name": "quay.io/org/base:9"}},
                {"name": "tools", "from": {"kind": "ImageStreamTag", "namespace": "shop", "name": "tools:1"}},
                {
                    "name": "shared",
                    "from": {"kind": "ImageStreamTag", "namespace": "common", "name": "lib:2"},
                },
            ],
        },
        "status": {
            "dockerImageRepository": own,
            "publicDockerImageRepository": f"{ROUTE}/shop/web",
            "tags": [
                {"tag": "latest", "items": [item(f"{own}@{D2}", D2), item(f"{own}@{D1}", D1)]},
                {"tag": "v1", "items": [item(f"{own}@{D1}", D1)]},
                {"tag": "base", "items": [item(f"quay.io/org/base@{EXTERNAL}", EXTERNAL)]},
                {"tag": "tools", "items": [item(f"{INTERNAL}/common/tools@{D4}", D4)]},
            ],
        },
    }
    result.update(overrides)
    return result


class TestImageReference:
    def test_an_internal_reference_by_digest(self) -> None:
        ref = ImageReference.parse(f"{INTERNAL}/shop/web@{D1}")
        assert ref == ImageReference(INTERNAL, "shop/web", None, D1)
        assert str(ref) == f"{INTERNAL}/shop/web@{D1}"

    def test_a_tag_after_a_registry_port_is_a_tag(self) -> None:
        ref = ImageReference.parse("127.0.0.1:5000/shop/web:v1")
        assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
            "127.0.0.1:5000",
            "shop/web",
            "v1",
            None,
        )
        assert str(ref.by_digest(D2)) == f"127.0.0.1:5000/shop/web@{D2}"

    def test_tag_and_digest_together(self) -> None:
        ref = ImageReference.parse(f"quay.io/org/app:1.2@{D1}")
        assert (ref.tag, ref.digest) == ("1.2", D1)
        assert str(ref) == f"quay.io/org/app:1.2@{D1}"

    def test_short_names_are_docker_hub(self) -> None:
        assert ImageReference.parse("nginx:1").at("x") == ImageReference("x", "library/nginx", "1")
        assert ImageReference.parse("org/app").registry == "docker.io"

    @pytest.mark.parametrize(
        "text",
        ["", f"{INTERNAL}/Shop/web", f"{INTERNAL}/shop/web@sha256:abc", f"{INTERNAL}/shop/web:bad tag"],
    )
    def test_malformed_references_are_refused(self, text: str) -> None:
        with pytest.raises(UsageError):
            ImageReference.parse(text)

    def test_a_reference_without_digest_cannot_be_pinned(self) -> None:
        with pytest.raises(UsageError):
            ImageReference.parse("quay.io/org/app:1").by_digest()


class TestInternalImages:
    def test_every_internal_image_once_by_digest_with_its_tags(self) -> None:
        found = internal_images(stream())
        assert (found.namespace, found.name, found.repository) == ("shop", "web", "shop/web")
        assert found.digests == (D2, D1, D4, D3)
        by_digest = {image.digest: image for image in found.images}
        assert by_digest[D1].tags == ("latest", "v1")
        assert by_digest[D2].tags == ("latest",)
        assert by_digest[D3].tags == ()
        assert str(by_digest[D1].source) == f"{INTERNAL}/shop/web@{D1}"
        # An image tagged in from another namespace's stream is read where it is.
        assert str(by_digest[D4].source) == f"{INTERNAL}/common/tools@{D4}"
        assert found.warnings == ()

    def test_each_tags_history_newest_first_internal_images_only(self) -> None:
        assert dict(internal_images(stream()).tag_history) == {
            "latest": (D2, D1),
            "v1": (D1,),
            "tools": (D4,),
        }

    def test_images_in_other_registries_are_left_where_they_are(self) -> None:
        assert EXTERNAL not in internal_images(stream()).digests

    def test_the_route_host_counts_as_internal(self) -> None:
        data = stream()
        data["status"]["tags"] = [{"tag": "pushed", "items": [item(f"{ROUTE}/shop/web@{D1}", D1)]}]
        data["spec"]["tags"] = []
        found = internal_images(data)
        assert found.digests == (D1,)
        assert found.images[0].source.registry == ROUTE

    def test_explicit_internal_hosts_are_added(self) -> None:
        data = stream()
        data["status"]["tags"].append(
            {"tag": "old", "items": [item(f"docker-registry.default.svc:5000/shop/web@{D4}", D4)]}
        )
        assert "old" not in internal_images(data).tag_history
        assert "old" in internal_images(data, ["Docker-Registry.default.svc:5000"]).tag_history
        assert internal_hosts(data, ["x:1"]) == {INTERNAL, ROUTE, "x:1"}

    def test_a_spec_tag_by_tag_is_pinned_by_its_status_tag(self) -> None:
        data = stream()
        data["spec"]["tags"] = [
            {"name": "latest", "from": {"kind": "DockerImage", "name": f"{INTERNAL}/shop/web:latest"}}
        ]
        found = internal_images(data)
        assert found.warnings == ()
        assert set(found.digests) == {D1, D2, D4}

    def test_a_spec_tag_by_tag_alone_is_a_warning(self) -> None:
        data = stream()
        data["spec"]["tags"] = [
            {"name": "edge", "from": {"kind": "DockerImage", "name": f"{INTERNAL}/shop/web:edge"}}
        ]
        [warning] = internal_images(data).warnings
        assert "edge" in warning and "by tag only" in warning

    def test_an_internal_item_without_digest_is_a_warning(self) -> None:
        data = stream()
        data["status"]["tags"] = [{"tag": "odd", "items": [item(f"{INTERNAL}/shop/web:odd", None)]}]
        data["spec"]["tags"] = []
        found = internal_images(data)
        assert found.images == ()
        assert "no digest" in found.warnings[0]

    def test_an_imagestream_never_pushed_to_has_no_images(self) -> None:
        found = internal_images({"metadata": {"name": "web", "namespace": "shop"}, "spec": {}})
        assert found.images == () and found.warnings == ()

    def test_an_imagestream_without_namespace_is_refused(self) -> None:
        with pytest.raises(UsageError):
            internal_images({"metadata": {"name": "web"}})


class TestBackupRepository:
    def test_one_repository_per_imagestream_by_digest(self) -> None:
        assert backup_repository("shop", "web") == "shop/web"
        assert (
            str(backup_reference("127.0.0.1:5000", "shop", "web.v2", D1))
            == f"127.0.0.1:5000/shop/web.v2@{D1}"
        )

    @pytest.mark.parametrize(
        ("namespace", "name"), [("Shop", "web"), ("shop", "web/x"), ("", "web"), ("shop", "-web")]
    )
    def test_names_that_are_no_repository_are_refused(self, namespace: str, name: str) -> None:
        with pytest.raises(UsageError):
            backup_repository(namespace, name)


class TestRewriteForRestore:
    def test_internal_references_point_at_the_copies_in_the_target_namespace_by_digest(self) -> None:
        original = stream()
        kept = copy.deepcopy(original)
        restored = rewrite_for_restore(original, target_registry=INTERNAL, target_namespace="shop-dr")
        assert original == kept
        target = f"{INTERNAL}/shop-dr/web"
        assert restored["metadata"] == {"name": "web", "namespace": "shop-dr", "resourceVersion": "42"}
        assert restored["status"]["dockerImageRepository"] == target
        assert "publicDockerImageRepository" not in restored["status"]
        references = {
            tag["tag"]: [(entry["dockerImageReference"], entry["image"]) for entry in tag["items"]]
            for tag in restored["status"]["tags"]
        }
        assert references == {
            "latest": [(f"{target}@{D2}", D2), (f"{target}@{D1}", D1)],
            "v1": [(f"{target}@{D1}", D1)],
            "base": [(f"quay.io/org/base@{EXTERNAL}", EXTERNAL)],
            "tools": [(f"{target}@{D4}", D4)],
        }

    def test_spec_tags_follow_the_images_and_the_namespace(self) -> None:
        restored = rewrite_for_restore(
            stream(),
            target_registry=INTERNAL,
            target_namespace="shop-dr",
            namespace_mapping={"common": "common-dr"},
        )
        sources = {tag["name"]: tag["from"] for tag in restored["spec"]["tags"]}
        assert sources["pinned"] == {"kind": "DockerImage", "name": f"{INTERNAL}/shop-dr/web@{D3}"}
        assert sources["base"] == {"kind": "DockerImage", "name": "quay.io/org/base:9"}
        assert sources["tools"] == {"kind": "ImageStreamTag", "namespace": "shop-dr", "name": "tools:1"}
        assert sources["shared"] == {"kind": "ImageStreamTag", "namespace": "common-dr", "name": "lib:2"}

    def test_a_spec_tag_by_tag_is_pinned_to_the_digest_its_status_tag_holds(self) -> None:
        data = stream()
        data["spec"]["tags"] = [
            {"name": "latest", "from": {"kind": "DockerImage", "name": f"{INTERNAL}/shop/web:latest"}}
        ]
        restored = rewrite_for_restore(data, target_registry="image-registry.example:5000")
        assert restored["spec"]["tags"][0]["from"]["name"] == f"image-registry.example:5000/shop/web@{D2}"

    def test_the_same_namespace_and_a_public_route(self) -> None:
        restored = rewrite_for_restore(
            stream(), target_registry=INTERNAL, public_registry="route.apps.dr.example"
        )
        assert restored["metadata"]["namespace"] == "shop"
        assert restored["status"]["publicDockerImageRepository"] == "route.apps.dr.example/shop/web"
