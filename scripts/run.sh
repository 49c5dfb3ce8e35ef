#!/usr/bin/env bash
# Run a command in the project environment (set up first), e.g. scripts/run.sh anon-ros demo --duration 20
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
in_private_network "$@"
