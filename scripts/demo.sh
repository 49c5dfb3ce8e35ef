#!/usr/bin/env bash
# The README's main command: set everything up, then run the embedded demo (no CARLA, no camera needed).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
in_private_network anon-ros demo "$@"
