# Sourced by scripts/test.sh and scripts/run.sh: set up (idempotent) and export the project environment.
#
# DDS never leaves loopback: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, a random ROS_DOMAIN_ID per run (unless one is
# set), and the shipped shared-memory Fast DDS profile.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=$(bash "$ROOT/scripts/setup.sh")
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$((RANDOM % 101 + 1))}
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
export FASTDDS_DEFAULT_PROFILES_FILE="$ROOT/config/fastdds_local.xml"
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export PATH="$VENV/bin:$PATH"
export PYTHONUNBUFFERED=1

# in_private_network CMD...: run CMD in a fresh network namespace that has only loopback, where the platform allows.
in_private_network() {
  if unshare --net true 2>/dev/null; then
    echo "[anon_ros] running in a fresh network namespace (loopback only), ROS_DOMAIN_ID=$ROS_DOMAIN_ID" >&2
    unshare --net bash -c 'ip link set lo up && exec "$@"' _ "$@"
  else
    echo "[anon_ros] no network namespace here (needs root or user namespaces); DDS stays on loopback through" \
         "ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and the Fast DDS profile. ROS_DOMAIN_ID=$ROS_DOMAIN_ID" >&2
    "$@"
  fi
}
