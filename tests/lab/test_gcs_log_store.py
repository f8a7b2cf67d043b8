"""BucketLogStore on GCS (fake-gcs-server over HTTP), selected by SPOTCTL_LOG_STORE=gs://...:
what `spotctl logs` would print is what the workers shipped, once, whoever re-sent it; the
objects are checked with a plain google-cloud-storage client."""

from __future__ import annotations

import gcs_lab as lab
import pytest
from gcs_lab import GcsLab
from log_store_contract import BUCKET, check_logs_are_read_back_once

from spotctl.config import Settings, load_settings
from spotctl.storage.bucket_log_store import BucketLogStore
from spotctl.storage.gcs import GcsStore
from spotctl.storage.log_store import open_log_store

gcs_lab = lab.gcs_lab  # the fixtures, shared by module attribute
fake_gcs_endpoint = lab.fake_gcs_endpoint


def test_log_store_url_from_the_environment(gcs_lab: GcsLab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOTCTL_HOME", str(gcs_lab.settings.home))
    monkeypatch.setenv("SPOTCTL_LOG_STORE", f"gs://{BUCKET}/team/logs")
    monkeypatch.setenv("SPOTCTL_GCS_ENDPOINT", gcs_lab.endpoint)
    store = open_log_store(load_settings())
    assert isinstance(store, BucketLogStore) and isinstance(store.store, GcsStore)
    assert (store.bucket, store.prefix) == (BUCKET, "team/logs")
    assert store.attempts(1) == [] and gcs_lab.buckets() == []  # reading makes no bucket


def test_logs_on_gcs_are_read_back_once(gcs_lab: GcsLab) -> None:
    check_logs_are_read_back_once(gcs_lab, "gs", GcsStore,
                                  Settings(home=gcs_lab.settings.home, gcp=gcs_lab.settings.gcp))
