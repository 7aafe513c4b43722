"""How long `traj serve` takes to start on an existing data dir: from spawn until every
run-manager shard logged "raw store scanned" (its startup scan done), with the records each shard
scanned and the receiver's peak RSS. Prints one JSON line.

    python3 tests/bench/startup_time.py --traj target/release/traj --data-dir DIR [--full-scan]

`--full-scan` moves DIR/index away first (restored after), which makes the start scan all of raw,
as the first start after an upgrade from a release without the index does.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import time


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traj", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--full-scan", action="store_true")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    index = os.path.join(args.data_dir, "index")
    parked = index + ".parked"
    if args.full_scan and os.path.isdir(index):
        os.rename(index, parked)
    shards = os.cpu_count() or 1
    env = dict(os.environ, RUST_LOG="info", NO_COLOR="1")
    started = time.monotonic()
    proc = subprocess.Popen(
        [args.traj, "serve", "--data-dir", args.data_dir, "--grpc", "127.0.0.1:0",
         "--http", "127.0.0.1:0"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
    )
    scanned = []
    try:
        for line in proc.stderr:
            if "raw store scanned" in line:
                fields = dict(re.findall(r"(\w+)=(\S+)", re.sub(r"\x1b\[[0-9;]*m", "", line)))
                scanned.append({k: int(v) for k, v in fields.items() if v.isdigit()})
                if len(scanned) == shards:
                    break
            if time.monotonic() - started > args.timeout:
                break
        elapsed = time.monotonic() - started
        rss = peak_rss_mib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        if args.full_scan and os.path.isdir(parked):
            if os.path.isdir(index):
                shutil.rmtree(index)
            os.rename(parked, index)
    print(json.dumps({
        "full_scan": args.full_scan,
        "seconds_to_scanned": round(elapsed, 3),
        "shards": scanned,
        "records_scanned": sum(s.get("records", 0) for s in scanned),
        "peak_rss_mib": rss,
    }))


if __name__ == "__main__":
    main()
