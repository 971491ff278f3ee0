"""``aftersync local`` stops on SIGTERM even when the kernel hands the signal to one of the sandbox's
other threads (it has ~50): Python runs the handler on the main thread only, so a main thread asleep in
an untimed wait never ran it and the sandbox ran on until killed."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

from infra.config import ROOT

# The CLI's ``local`` with a stand-in sandbox (nothing to start): SIGTERM is blocked on the main thread,
# so the kernel must deliver it to the other thread, as it may in the real sandbox.
SCRIPT = textwrap.dedent(
    """
    import signal, threading, time
    from ops.cli import sandbox as cli

    class Running:
        api_port = 0
        def describe(self): return {}
        def sidebar_links(self): return {}
        def stop(self): print("stopped", flush=True)

    cli._start = lambda *args, **kwargs: Running()
    threading.Thread(target=time.sleep, args=(120,), daemon=True).start()  # a thread that takes the signal
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    cli.local(port=0, env="dev", secrets=None, verbose=False)
    """
)


def test_local_stops_on_a_sigterm_another_thread_received() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        while "sandbox running" not in process.stdout.readline():  # it waits for SIGTERM from here on
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0, err
    assert out.splitlines()[-1] == "stopped"
