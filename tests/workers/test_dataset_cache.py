"""A worker process loads each dataset once (workers/dataset_cache.py): built-ins and
uploads come from memory for the next job, within a memory bound, and a deleted upload
still fails the job."""

from __future__ import annotations

import numpy as np
import pytest

from core.dataset_sources import open_dataset
from core.db import make_engine
from core.storage import open_storage
from core.uploads import UploadMissing, UploadStore
from tests.conftest import OWNER, authed_client
from tests.sample_uploads import as_npz, blobs, uploaded
from workers.dataset_cache import DatasetCache


@pytest.fixture()
def engine(settings):
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


def test_a_builtin_is_loaded_once_and_equals_a_fresh_load(settings, engine):
    cache = DatasetCache(64 * 1024 * 1024)
    first = cache.open({"name": "digits"}, settings, engine, owner=OWNER)
    again = cache.open({"name": "digits"}, settings, engine, owner=OWNER)
    assert again is first and (cache.hits, cache.misses) == (1, 1)
    fresh = open_dataset({"name": "digits"}, settings, engine, owner=OWNER)
    np.testing.assert_array_equal(first.arrays.x, fresh.arrays.x)
    np.testing.assert_array_equal(first.arrays.y, fresh.arrays.y)
    assert (first.classes, first.info, first.task) == (fresh.classes, fresh.info, fresh.task)


def test_an_upload_is_kept_per_id_and_a_deleted_one_still_fails_the_job(app, settings, engine):
    x, y = blobs(rows_per_class=20)
    dataset = uploaded(authed_client(app), as_npz(x, y), "blobs.npz")
    cache = DatasetCache(64 * 1024 * 1024)
    spec = {"id": dataset["id"]}
    first = cache.open(spec, settings, engine, owner=OWNER)
    assert cache.open(spec, settings, engine, owner=OWNER) is first and cache.hits == 1
    np.testing.assert_array_equal(first.arrays.x, x.astype(np.float32))
    with pytest.raises(UploadMissing):  # another owner's upload does not exist for this job
        cache.open(spec, settings, engine, owner="someone-else")
    UploadStore(engine, open_storage(settings, engine)).delete(dataset["id"], owner=None, force=True)
    with pytest.raises(UploadMissing):
        cache.open(spec, settings, engine, owner=OWNER)


def test_the_cache_holds_no_more_than_its_bound(settings, engine):
    sizes = {name: sum(a.nbytes for a in (arrays.x, arrays.y)) for name, arrays in (
        (name, open_dataset({"name": name}, settings, engine, owner=OWNER).arrays) for name in ("moons", "spirals"))}
    size = max(sizes.values())
    assert size < sum(sizes.values())
    cache = DatasetCache(size)  # room for one of moons and spirals
    moons = cache.open({"name": "moons"}, settings, engine, owner=OWNER)
    cache.open({"name": "digits"}, settings, engine, owner=OWNER)  # larger than the bound: not kept
    assert cache.bytes <= size and cache.open({"name": "moons"}, settings, engine, owner=OWNER) is moons
    cache.open({"name": "spirals"}, settings, engine, owner=OWNER)  # pushes moons out
    assert cache.bytes <= size and cache.open({"name": "moons"}, settings, engine, owner=OWNER) is not moons
