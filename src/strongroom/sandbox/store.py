"""kube-apiserver's storage contract on top of etcd: revisions, transactions, paging, watch.

Objects are JSON values under their registry key. An object's
`metadata.resourceVersion` is the key's etcd modification revision and is
never stored; a list's resourceVersion is the revision it was read at. Every
write is an etcd transaction guarded by the revision it was computed from, so
no concurrent update is ever lost.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from etcd3aio import Etcd3Client, prefix_range_end

from strongroom.sandbox import apierrors

JsonObject = dict[str, Any]

# How many keys one etcd range read fetches; lists larger than this take several reads.
_SCAN_BATCH = 500


@dataclass(frozen=True)
class Stored:
    """An object as read from etcd, with its revisions."""

    key: str
    obj: JsonObject
    mod_revision: int
    create_revision: int


@dataclass(frozen=True)
class ListPage:
    items: list[Stored]
    revision: int
    continue_key: str | None
    remaining: int | None


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED
    key: str
    obj: JsonObject
    revision: int
    prev: JsonObject | None


class ResourceExpired(Exception):
    """The revision asked for has been compacted away."""


def _decode(value: bytes, revision: int) -> JsonObject:
    obj: JsonObject = json.loads(value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
    return obj


def _encode(obj: JsonObject) -> bytes:
    meta = obj.get("metadata") or {}
    if "resourceVersion" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "resourceVersion"}}
    return json.dumps(obj, separators=(",", ":"), sort_keys=False).encode()


def encode_continue(key: str, revision: int) -> str:
    token = {"v": "meta.k8s.io/v1", "rv": revision, "start": key}
    return base64.urlsafe_b64encode(json.dumps(token, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_continue(token: str, prefix: str) -> tuple[str, int]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        start, revision = str(data["start"]), int(data["rv"])
    except (ValueError, KeyError, TypeError) as exc:
        raise apierrors.bad_request(f"continue key is not valid: {exc}") from exc
    if data.get("v") != "meta.k8s.io/v1" or not start.startswith(prefix) or revision <= 0:
        raise apierrors.bad_request("continue key is not valid: incorrect encoded start resourceVersion")
    return start, revision


def _is_compacted(exc: grpc.aio.AioRpcError) -> bool:
    return bool(exc.code() == grpc.StatusCode.OUT_OF_RANGE)


class Store:
    """The sandbox's only access to etcd."""

    def __init__(self, client: Etcd3Client) -> None:
        self._client = client

    @property
    def _kv(self) -> Any:
        assert self._client.kv is not None
        return self._client.kv

    async def current_revision(self) -> int:
        resp = await self._kv.get("/registry/", range_end=prefix_range_end("/registry/"), count_only=True)
        return int(resp.header.revision)

    async def get(self, key: str) -> Stored | None:
        resp = await self._kv.get(key)
        if not resp.kvs:
            return None
        kv = resp.kvs[0]
        return Stored(key, _decode(kv.value, kv.mod_revision), kv.mod_revision, kv.create_revision)

    async def create(self, key: str, obj: JsonObject) -> Stored | None:
        """Store a new object; None when the key already exists."""
        kv = self._kv
        resp = await kv.txn(
            compare=[kv.txn_compare_create_revision(key, 0)],
            success=[kv.txn_op_put(key, _encode(obj))],
        )
        if not resp.succeeded:
            return None
        revision = int(resp.responses[0].response_put.header.revision)
        return Stored(key, _with_rv(obj, revision), revision, revision)

    async def replace(self, key: str, obj: JsonObject, expected_revision: int) -> Stored | None:
        """Write `obj` if the key is still at `expected_revision`; None when it moved on."""
        kv = self._kv
        resp = await kv.txn(
            compare=[_compare_mod(key, expected_revision)],
            success=[kv.txn_op_put(key, _encode(obj))],
        )
        if not resp.succeeded:
            return None
        revision = int(resp.responses[0].response_put.header.revision)
        return Stored(key, _with_rv(obj, revision), revision, 0)

    async def delete(self, key: str, expected_revision: int) -> int | None:
        """Delete if unchanged since `expected_revision`; the deletion revision, or None."""
        kv = self._kv
        resp = await kv.txn(
            compare=[_compare_mod(key, expected_revision)],
            success=[kv.txn_op_delete(key)],
        )
        if not resp.succeeded:
            return None
        return int(resp.responses[0].response_delete_range.header.revision)

    async def guaranteed_update(
        self,
        key: str,
        mutate: Callable[[Stored], Awaitable[JsonObject | None]],
        *,
        not_found: Callable[[], Exception],
        attempts: int = 64,
    ) -> Stored:
        """Read-modify-write with retries on concurrent change, as kube's GuaranteedUpdate.

        `mutate` returns the new object, or None to leave the stored one as it is.
        """
        for _ in range(attempts):
            current = await self.get(key)
            if current is None:
                raise not_found()
            updated = await mutate(current)
            if updated is None:
                return current
            written = await self.replace(key, updated, current.mod_revision)
            if written is not None:
                return written
            await asyncio.sleep(0)
        raise apierrors.timeout(f"too many concurrent updates of {key}")

    async def list(
        self,
        prefix: str,
        *,
        limit: int = 0,
        continue_token: str | None = None,
        revision: int = 0,
        accept: Callable[[JsonObject], bool] | None = None,
    ) -> ListPage:
        """A page of the objects under `prefix`, optionally filtered, as kube paginates."""
        start = prefix
        if continue_token:
            start, revision = decode_continue(continue_token, prefix)
        end = prefix_range_end(prefix)
        items: list[Stored] = []
        read_revision = revision
        remaining: int | None = None
        more = False
        key = start
        try:
            while True:
                # Bounded ranges: one gRPC message must stay under the client's 4 MiB limit,
                # and kube lists of any size must still work.
                batch = _SCAN_BATCH
                if limit and accept is None:
                    batch = min(limit - len(items) + 1, _SCAN_BATCH)
                resp = await self._kv.get(key, range_end=end, revision=read_revision, limit=batch)
                if not read_revision:
                    read_revision = int(resp.header.revision)
                kvs = list(resp.kvs)
                for index, kv in enumerate(kvs):
                    obj = _decode(kv.value, kv.mod_revision)
                    if accept is not None and not accept(obj):
                        continue
                    if limit and len(items) == limit:
                        more = True
                        if accept is None:
                            remaining = int(resp.count) - index
                        break
                    items.append(Stored(kv.key.decode(), obj, kv.mod_revision, kv.create_revision))
                if more or not resp.more or not kvs:
                    break
                key = kvs[-1].key.decode() + "\x00"
        except grpc.aio.AioRpcError as exc:
            if _is_compacted(exc):
                raise ResourceExpired(str(exc.details())) from exc
            raise
        next_token = None
        if more and items:
            next_token = encode_continue(items[-1].key + "\x00", read_revision)
        return ListPage(items, read_revision, next_token, remaining)

    async def watch(self, prefix: str, start_revision: int) -> AsyncGenerator[WatchEvent]:
        """Events under `prefix` from `start_revision` (inclusive) on, until cancelled."""
        assert self._client.watch is not None
        stream: AsyncGenerator[Any] = self._client.watch.watch(  # type: ignore[assignment]
            prefix, range_end=prefix_range_end(prefix), start_revision=start_revision, prev_kv=True
        )
        try:
            async for response in stream:
                if response.compact_revision > 0:
                    raise ResourceExpired(
                        f"too old resource version: {start_revision - 1} ({response.compact_revision})"
                    )
                if response.canceled:
                    raise ResourceExpired(response.cancel_reason or "watch cancelled by etcd")
                for ev in response.events:
                    key = ev.kv.key.decode()
                    prev = _decode(ev.prev_kv.value, ev.prev_kv.mod_revision) if ev.prev_kv.key else None
                    if ev.type == 1:  # DELETE: etcd keeps no value; kube reports the last state
                        if prev is None:
                            continue
                        obj = dict(prev)
                        obj["metadata"] = {
                            **prev.get("metadata", {}),
                            "resourceVersion": str(ev.kv.mod_revision),
                        }
                        yield WatchEvent("DELETED", key, obj, ev.kv.mod_revision, prev)
                    else:
                        obj = _decode(ev.kv.value, ev.kv.mod_revision)
                        kind = "ADDED" if ev.kv.create_revision == ev.kv.mod_revision else "MODIFIED"
                        yield WatchEvent(kind, key, obj, ev.kv.mod_revision, prev)
        except grpc.aio.AioRpcError as exc:
            if _is_compacted(exc):
                raise ResourceExpired(str(exc.details())) from exc
            raise
        finally:
            await stream.aclose()


def _with_rv(obj: JsonObject, revision: int) -> JsonObject:
    meta = dict(obj.get("metadata") or {})
    meta["resourceVersion"] = str(revision)
    return {**obj, "metadata": meta}


def _compare_mod(key: str, revision: int) -> Any:
    from etcd3aio._protobuf import Compare

    return Compare(result=Compare.EQUAL, target=Compare.MOD, key=key.encode(), mod_revision=revision)
