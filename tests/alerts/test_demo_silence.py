"""`flask demo silence`: the control file the demo PACER reads to silence its consumers."""

from __future__ import annotations

import dataclasses

from pacer.demo.run import SILENCE_FILE, silenced_types


def test_control_file_wins_over_the_environment(tmp_path):
    path = tmp_path / SILENCE_FILE
    assert silenced_types(path, "user-sync, proposal-sync") == {"user-sync", "proposal-sync"}
    path.write_text("# silenced\ndataset-ingestion\n")
    assert silenced_types(path, "user-sync") == {"dataset-ingestion"}
    path.write_text("")
    assert silenced_types(path, "user-sync") == set()


def test_flask_demo_silence_and_resume(app, tmp_path):
    original = app.extensions["settings"]
    app.extensions["settings"] = dataclasses.replace(original, RUN_DIR=str(tmp_path))
    try:
        runner = app.test_cli_runner()
        result = runner.invoke(args=["demo", "silence", "user-sync", "proposal-sync"])
        assert result.exit_code == 0, result.output
        assert (tmp_path / SILENCE_FILE).read_text() == "proposal-sync\nuser-sync\n"
        result = runner.invoke(args=["demo", "silence", "--resume", "user-sync"])
        assert "silenced: proposal-sync" in result.output
        result = runner.invoke(args=["demo", "silence", "no-such-type"])
        assert result.exit_code != 0 and "not a demo message type: no-such-type" in result.output
        assert runner.invoke(args=["demo", "silence", "--resume"]).output.startswith(
            "silenced: none"
        )
    finally:
        app.extensions["settings"] = original
