# SPDX-License-Identifier: GPL-2.0-or-later
# Sourced by the tests/remote scripts (bash): skip/fail, and two "hosts" as
# network namespaces the test creates itself, joined by a veth pair.
#
#   hosts_names TAG NETBASE   sets NS_SRC NS_DST V_SRC V_DST A_SRC A_DST
#                             (names carry TAG and our pid; addresses
#                             10.(NETBASE + pid % 50).x.1 and .2, so that
#                             tests running at once do not collide)
#   hosts_up                  creates them: namespaces, veth, /24 addresses,
#                             lo and the veth up (skips where it cannot)
#   in_src CMD... / in_dst CMD...   run CMD inside one of them
#   hosts_down                stops the processes in PIDS (kill, wait),
#                             deletes the namespaces and the folder $T: the
#                             end of the caller's cleanup

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; failed=1; }
in_src() { ip netns exec "$NS_SRC" "$@"; }
in_dst() { ip netns exec "$NS_DST" "$@"; }

hosts_names() {
	local tag=$1 base=$2 id=$$ net

	NS_SRC=${tag}src$id NS_DST=${tag}dst$id
	V_SRC=${tag}s$id V_DST=${tag}d$id
	net=10.$((base + id % 50)).$((id / 50 % 250))
	A_SRC=$net.1 A_DST=$net.2
}

hosts_up() {
	ip netns add "$NS_SRC" || skip "cannot create network namespaces"
	ip netns add "$NS_DST" || skip "cannot create network namespaces"
	ip link add "$V_SRC" type veth peer name "$V_DST" || skip "no veth"
	ip link set "$V_SRC" netns "$NS_SRC"
	ip link set "$V_DST" netns "$NS_DST"
	in_src ip addr add "$A_SRC/24" dev "$V_SRC"
	in_dst ip addr add "$A_DST/24" dev "$V_DST"
	in_src ip link set lo up
	in_src ip link set "$V_SRC" up
	in_dst ip link set lo up
	in_dst ip link set "$V_DST" up
}

hosts_down() {
	local p

	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	ip netns del "$NS_SRC" 2>/dev/null
	ip netns del "$NS_DST" 2>/dev/null
	rm -rf "$T"
}
