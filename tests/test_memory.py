"""``app.tune_malloc``: image-sized buffers go back to the system when freed, whatever came before."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Freed 32 MB first (glibc then raises its mmap threshold past an image's size), then six threads each
# hold eight 6 MB "images" while keeping a small object apiece, and drop the images. Prints the MB of
# resident memory still held afterwards.
PROBE = """
import sys, threading
import app

def rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS"))

if sys.argv[1] == "tuned":
    app.tune_malloc()
big = bytearray(32 * 2**20)
big[::4096] = b"x" * len(big[::4096])
del big
before = rss_mb()
kept = []

def work():
    images = []
    for _ in range(8):
        images.append(bytes(6 * 2**20))
        kept.append(bytes(1024))
    del images

threads = [threading.Thread(target=work) for _ in range(6)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(rss_mb() - before)
"""


def held_after(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    return int(done.stdout.strip())


@pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's allocator only"
)
def test_freed_images_go_back_to_the_system() -> None:
    assert held_after("plain") > 40  # the probe shows the problem: without tuning, ~85 MB stay held
    assert held_after("tuned") < 20
