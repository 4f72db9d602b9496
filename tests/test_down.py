"""`make down` (scripts/down.sh) stops every process `make up` recorded, by PID."""

from __future__ import annotations

import os
import subprocess
import threading

from tests.processes import ROOT


def test_down_stops_every_process_make_up_recorded(tmp_path):
    run_dir = tmp_path / "run"
    pids = run_dir / "pids"
    pids.mkdir(parents=True)
    started = {}
    # `live` is one of up.sh's processes; the other stands for any process added to up.sh later.
    for name in ("live", "web", "a-process-added-later"):
        proc = subprocess.Popen(["sleep", "300"], start_new_session=True)  # noqa: S603, S607
        (pids / f"{name}.pid").write_text(f"{proc.pid}\n")
        started[name] = proc
        # Reap each one as soon as it ends, as init would for `make up`'s processes: down.sh
        # waits while the PID exists, and an unreaped child stays a zombie.
        threading.Thread(target=proc.wait, daemon=True).start()
    try:
        done = subprocess.run(  # noqa: S603
            ["bash", str(ROOT / "scripts" / "down.sh")],
            cwd=ROOT,
            env={**os.environ, "RUN_DIR": str(run_dir)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        for name, proc in started.items():
            assert proc.wait(timeout=15) is not None, name
            assert f"[down] stopped {name} (pid {proc.pid})" in done.stdout, done.stdout
        assert not list(pids.glob("*.pid"))
    finally:
        for proc in started.values():
            if proc.poll() is None:
                proc.kill()
