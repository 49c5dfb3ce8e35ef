#!/usr/bin/env bash
# The test command (README, .ci/run): set up (idempotent), then run pytest with DDS confined to this machine,
# inside a fresh network namespace where possible. Arguments go to pytest, e.g. scripts/test.sh tests/core -k sync
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
export PYTHONDONTWRITEBYTECODE=1
# Speech data comes from requirements/debian.txt: a missing package fails the speech tests instead of skipping them.
export ANON_ROS_REQUIRE_SPEECH_DATA=1
in_private_network "$VENV/bin/python" -m pytest "$@"
