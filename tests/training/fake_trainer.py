"""Stand-ins for the trainer (IMAGINEER_TRAINER_MODULE) that misbehave on purpose.

FAKE_TRAINER_MODE picks how:
- hang: says it started, starts a grandchild in its group, ignores SIGTERM, then never reports again;
- stream: reports a step every 0.2 s for ever (only the wall-clock guard stops it);
- crash: prints a path and a traceback-like line and exits 1;
- slow: reports a step every 0.2 s for 600 steps (for cancel tests).
"""

import json
import os
import signal
import subprocess
import sys
import time


def main() -> int:
    args = sys.argv[1:]
    progress = os.fdopen(int(args[args.index("--progress-fd") + 1]), "w", buffering=1)
    mode = os.environ.get("FAKE_TRAINER_MODE", "hang")
    print(f"fake trainer ({mode}) reading /var/lib/imagineer/secret/spec.json", flush=True)
    if mode == "crash":
        print("RuntimeError: CUDA out of memory in /opt/models/unet.bin", flush=True)
        return 1
    progress.write(json.dumps({"event": "started", "total": 600, "device": "cpu"}) + "\n")
    if mode == "hang":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(os.environ["FAKE_TRAINER_PIDS"], "w") as pids:
            pids.write(f"{os.getpid()} {child.pid}")
        while True:
            time.sleep(1)
    for step in range(1, 10**9 if mode == "stream" else 601):
        progress.write(json.dumps({"event": "step", "step": step % 600 or 600, "total": 600, "loss": 0.5}) + "\n")
        print(f"step {step}", flush=True)
        time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
