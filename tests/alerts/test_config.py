"""Alert settings: validated at start-up with one line naming the variable; the beat entry."""

from __future__ import annotations

import pytest

from webapp.config import ConfigError, Settings

BASE = {"RMQ_HOST": "localhost", "DISABLED_AUTH": "true", "ENVIRONMENT": "development"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SMTP_HOST": "smtp.example.org"}, "ALERT_MAIL_FROM: required when SMTP_HOST is set"),
        ({"SMTP_USER": "me"}, "SMTP_PASSWORD: required when SMTP_USER is set"),
        ({"ALERT_EVALUATE_SECONDS": "120"}, "ALERT_EVALUATE_SECONDS: must be at most 60"),
        ({"ALERT_SILENCE_PERCENTILE": "20"}, "ALERT_SILENCE_PERCENTILE: must be at least 50"),
        ({"SMTP_PORT": "smtp"}, "SMTP_PORT: expected an integer"),
        ({"SMTP_STARTTLS": "maybe"}, "SMTP_STARTTLS: expected a boolean"),
    ],
)
def test_bad_alert_settings_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(environ={**BASE, **env})


def test_alert_defaults():
    s = Settings.from_env(environ=BASE)
    assert (s.SMTP_PORT, s.SMTP_STARTTLS, s.ALERT_EVALUATE_SECONDS) == (587, True, 60)
    assert (s.ALERT_SILENCE_LEARN_DAYS, s.ALERT_SILENCE_PERCENTILE) == (28, 95)


def test_beat_evaluates_the_rules_every_alert_evaluate_seconds():
    import celeryconfig

    conf = celeryconfig.build(Settings.from_env(environ={**BASE, "ALERT_EVALUATE_SECONDS": "20"}))
    entry = conf["beat_schedule"]["alerts-evaluate"]
    assert entry["task"] == "tasks.alerts.evaluate_rules"
    assert entry["schedule"] == 20.0 and entry["options"] == {"expires": 20}
    assert "tasks.alerts" in conf["include"]
