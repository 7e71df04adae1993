"""Loader errors for what the simulator added: distributions, traffic, generate."""

from __future__ import annotations

import pytest

from imsim.model.scenario import ScenarioError
from tests.helpers import handbook_document, load_document


def error(document: dict) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        load_document(document)
    return caught.value


def test_distribution_with_a_foreign_parameter() -> None:
    document = handbook_document()
    document["traffic"]["conversations"] = {
        "probability": 0.5, "think_time": {"dist": "exponential", "mean": 2, "sd": 1}}
    found = error(document)
    assert found.yaml_path == "traffic.conversations.think_time"
    assert "exponential takes mean, not sd" in str(found)


def test_unknown_sim_key() -> None:
    document = handbook_document()
    document["sim"] = {"proxy": {"workerz": 3}}
    found = error(document)
    assert found.yaml_path == "sim.proxy.workerz"
    assert "unknown key" in str(found)


def test_generate_block_errors_name_the_yaml_path_and_step_9() -> None:
    document = handbook_document()
    document["environments"][0]["customers"][0]["generate"] = {
        "count": 10, "first_id": "15550000000", "product": "Softphone", "colour": "red"}
    found = error(document)
    assert found.yaml_path == "environments[0].customers[0].generate.colour"
    assert found.step == 9


def test_generated_accounts_are_checked_like_listed_ones() -> None:
    document = handbook_document()
    document["environments"][0]["customers"][0]["generate"] = {
        "count": 3, "first_id": "15551230000", "product": "Softphone"}
    assert "appears twice" in str(error(document))


def test_generate_expands_with_buddies() -> None:
    document = handbook_document()
    document["environments"][0]["customers"][0]["generate"] = {
        "count": 4, "first_id": "15550000000", "product": "Softphone", "balance": 2,
        "buddies_per_account": 2}
    accounts = load_document(document).environments[0].customers[0].accounts
    assert [a.id for a in accounts][-4:] == [f"1555000000{k}" for k in range(4)]
    assert accounts[-1].buddies == ("15550000000", "15550000001")
    assert accounts[-1].password == "secret-15550000003"


def test_profile_needs_24_hours() -> None:
    document = handbook_document()
    document["traffic"]["profile"] = [1.0] * 23
    assert error(document).yaml_path == "traffic.profile"


def test_offline_accounts_must_exist() -> None:
    document = handbook_document()
    document["traffic"]["offline"] = ["15550000042"]
    found = error(document)
    assert found.yaml_path == "traffic.offline[0]"
