// Package testnet (Linux only) builds throw-away network topologies for privileged tests:
// network namespaces, veth pairs (optionally multi-queue), addresses, routes,
// and checksum-offload settings, all removed by t.Cleanup, also when the test
// fails.
//
// Every name is unique per process and test (interfaces are at most 15
// characters). Addresses must come from the benchmarking ranges
// 198.18.0.0/15 and 2001:2::/48; helpers refuse anything else so that a test
// can never send traffic elsewhere.
//
// Privileged tests call RequirePriv first: without root they skip, unless
// the environment expects privileges (CI=true or XDPGATE_REQUIRE_PRIV=1), in
// which case a missing privilege fails the test.
package testnet
