"""Shared header for benchmark reports: machine, date, commit, command (BENCHMARKS.md)."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import subprocess
import sys

import torch


def machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        mem = f"{mem_gib:.0f} GiB"
    except (ValueError, OSError):
        mem = "unknown memory"
    return f"{os.cpu_count()} cores, {mem}, {gpu}, {platform.machine()}, torch {torch.__version__}"


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def header() -> str:
    command = "python " + shlex.join(sys.argv)
    return (
        f"- machine: {machine()}\n- date: {dt.date.today().isoformat()}\n"
        f"- commit: {commit()}\n- command: `{command}`\n"
    )
