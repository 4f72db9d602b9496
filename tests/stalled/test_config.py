"""STALLED_* settings: defaults, the per-pipeline override, one-line errors naming the variable."""

from __future__ import annotations

import pytest

from webapp.config import ConfigError, Settings, parse_pipelines

BASE = {"RMQ_HOST": "localhost", "ENVIRONMENT": "development", "DISABLED_AUTH": "true"}


def load(**env: str) -> Settings:
    return Settings.from_env(environ={**BASE, **env})


def test_defaults():
    settings = load()
    (pipeline,) = parse_pipelines(settings.PIPELINES)
    assert settings.STALLED_AFTER_MINUTES == 120
    assert settings.STALLED_WINDOW_DAYS == 3
    assert settings.stalled_after_minutes(pipeline) == 120


def test_per_pipeline_override_names_a_pipeline_by_any_of_its_types():
    settings = load(
        PIPELINES="a > b; c > d, e",
        STALLED_AFTER_MINUTES="60",
        STALLED_AFTER_BY_PIPELINE="e=15",
    )
    first, second = parse_pipelines(settings.PIPELINES)
    assert settings.stalled_after_minutes(first) == 60
    assert settings.stalled_after_minutes(second) == 15


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"STALLED_AFTER_MINUTES": "0"}, "STALLED_AFTER_MINUTES"),
        ({"STALLED_AFTER_MINUTES": "soon"}, "STALLED_AFTER_MINUTES"),
        ({"STALLED_WINDOW_DAYS": "31"}, "STALLED_WINDOW_DAYS"),
        ({"STALLED_AFTER_BY_PIPELINE": "user-sync=10"}, "STALLED_AFTER_BY_PIPELINE"),
        ({"STALLED_AFTER_BY_PIPELINE": "dataset-ingestion"}, "STALLED_AFTER_BY_PIPELINE"),
        ({"STALLED_AFTER_BY_PIPELINE": "dataset-ingestion=x"}, "STALLED_AFTER_BY_PIPELINE"),
        ({"STALLED_AFTER_BY_PIPELINE": "dataset-ingestion=0"}, "STALLED_AFTER_BY_PIPELINE"),
    ],
)
def test_bad_values_name_the_variable(env, variable):
    with pytest.raises(ConfigError) as error:
        load(**env)
    message = str(error.value)
    assert message.startswith(f"{variable}:") and "\n" not in message
