#!/usr/bin/env bash
# Why: PyPI's torch for x86_64 is a CUDA build; with torchvision and the extras .venv takes
# ~6.5 GB, and pip's own "No space left on device" comes minutes in, mid-install, naming no fix.
# Say it before installing, with what is free and what to remove (a warning: pip may still fit).
set -euo pipefail
need_gb=${PRIVFED_VENV_GB:-7}
dir=${1:-.}
free_kb=$(df -Pk "$dir" | awk 'NR == 2 {print $4}')
free_gb=$((free_kb / 1024 / 1024))
if [ "$free_gb" -lt "$need_gb" ]; then
  echo "privfed: only ${free_gb} GB free on the disk holding $(cd "$dir" && pwd); installing .venv needs about ${need_gb} GB; trying anyway" >&2
  echo "privfed: if pip then fails with 'No space left on device', free some (old run directories under runs/; pip's cache: python3 -m pip cache purge) and run make again" >&2
fi
