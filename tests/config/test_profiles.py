from __future__ import annotations

import pytest
from pydantic import ValidationError

from tongyi_agent.config import ModelProfile


def remote(**kw: object) -> ModelProfile:
    return ModelProfile.model_validate({"name": "r", "provider": "openai", "model_id": "m", **kw})


def test_env_base_url_wins_over_configured() -> None:
    profile = remote(base_url="https://a.example/v1", base_url_env="MY_URL")
    assert profile.resolved_base_url({}) == "https://a.example/v1"
    assert profile.resolved_base_url({"MY_URL": "http://127.0.0.1:8000/v1"}) == "http://127.0.0.1:8000/v1"


def test_api_key_order() -> None:
    profile = remote(api_key_env="MY_KEY")
    assert profile.api_key({}) is None
    assert profile.api_key({"OPENROUTER_API_KEY": "or"}) == "or"
    assert profile.api_key({"OPENROUTER_API_KEY": "or", "OPENAI_API_KEY": "oa"}) == "oa"
    assert profile.api_key({"MY_KEY": "mine", "OPENAI_API_KEY": "oa"}) == "mine"
    # An empty variable is treated as unset rather than sent as an empty key.
    assert profile.api_key({"MY_KEY": "", "OPENAI_API_KEY": "oa"}) == "oa"


def test_embedded_needs_weights_and_is_local() -> None:
    with pytest.raises(ValidationError, match="weights"):
        ModelProfile(name="e", provider="embedded", model_id="m")
    profile = ModelProfile(name="e", provider="embedded", model_id="m", weights="w")
    assert not profile.is_remote
    assert remote().is_remote


@pytest.mark.parametrize("field,value", [("temperature", 2.5), ("top_p", 0), ("context_length", 0),
                                         ("max_retries", -1), ("timeout", 0)])
def test_ranges(field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=field):
        remote(**{field: value})


def test_unknown_field_rejected() -> None:
    with pytest.raises(ValidationError, match="contxt_length"):
        remote(contxt_length=10)
