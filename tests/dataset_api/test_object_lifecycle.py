"""Stored bytes outlive nothing that references them: the start-up sweep for what a dead process left."""

from __future__ import annotations

import os
import time

from services.dataset.objects import collect, sweep_orphans
from services.dataset.storage import LocalObjectStore
from shared.db import create_engine, create_sessionmaker
from tests.dataset_api.files import objects_dir, png


async def test_sweep_removes_only_old_unreferenced_bytes(manager, backing):
    client, _ = manager
    engine = create_engine(backing.database_url, "dataset-test")
    sessionmaker = create_sessionmaker(engine)
    store = LocalObjectStore(objects_dir(backing.namespace))
    try:
        hours_ago = time.time() - 7200
        orphan = await store.put_bytes(os.urandom(1000))  # as if a process died before its commit
        os.utime(store.path(orphan.key), (hours_ago, hours_ago))
        young = await store.put_bytes(os.urandom(1000))  # as if an upload were still in progress
        image = png(12, 12)
        url = (await client.post("/picbed/", files={"img": ("a.png", image, "image/png")})).json()["data"]["url"]
        referenced = await store.put_bytes(image)  # the same bytes: the key of the picture
        os.utime(store.path(referenced.key), (hours_ago, hours_ago))

        assert await sweep_orphans(sessionmaker, store, older_than=3600) == 1
        assert not await store.exists(orphan.key)
        assert await store.exists(young.key) and await store.exists(referenced.key)
        assert (await client.get(url)).content == image

        assert await collect(sessionmaker, store, [young.key, referenced.key]) == 1
        assert not await store.exists(young.key) and await store.exists(referenced.key)
    finally:
        await engine.dispose()
