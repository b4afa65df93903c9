package baseline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/xdpgate/xdpgate/snapshot"
)

// cmdTimeout bounds every nft/iptables/sysctl invocation.
const cmdTimeout = 30 * time.Second

// forwardingSysctls are enabled by Install and restored by remove.
var forwardingSysctls = []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"}

// Install applies the ruleset of kind k for s inside the named network
// namespace (one under /run/netns, as `ip netns add` creates) and enables
// IPv4 and IPv6 forwarding there. It returns a function that removes
// exactly what it installed and puts the forwarding sysctls back; calling it
// more than once does nothing after the first call. Install never touches
// the root namespace: every command runs under `ip netns exec`.
//
// NFTables runs `nft -f -` with RenderNFT's script, which replaces any
// table ip/ip6 kube-proxy already there; remove deletes both tables.
//
// IPTables first removes kube-proxy leftovers (every KUBE-* chain in the
// nat and filter tables, and the built-in chain rules that jump to them, as
// kube-proxy's CleanupLeftovers does), then runs `iptables-restore
// --noflush` with RenderIPTables' input; remove deletes the jump rules and
// chains it added. It uses the system's default iptables-restore: on the
// development machine (Debian 12) that is iptables v1.8.9 with the
// nf_tables backend (iptables-nft, i.e. xtables matches such as recent and
// statistic run through nft_compat); IPTablesBackend reports which one is in
// use.
func Install(netnsName string, k Kind, s *snapshot.Snapshot, o Options) (remove func() error, err error) {
	if err := checkNetns(netnsName); err != nil {
		return nil, err
	}
	var apply, undo func() error
	switch k {
	case NFTables:
		script, err := RenderNFT(s, o)
		if err != nil {
			return nil, err
		}
		apply = func() error { return nsRun(netnsName, script, "nft", "-f", "-") }
		undo = func() error { return nsRun(netnsName, nftDeleteScript(), "nft", "-f", "-") }
	case IPTables:
		r, err := renderIPTables(s, o)
		if err != nil {
			return nil, err
		}
		apply = func() error {
			if err := iptCleanupLeftovers(netnsName); err != nil {
				return err
			}
			return nsRun(netnsName, r.restore(true), "iptables-restore", "-w", "--noflush")
		}
		undo = func() error { return nsRun(netnsName, r.removal(true), "iptables-restore", "-w", "--noflush") }
	default:
		return nil, fmt.Errorf("%w: kind %s", ErrInvalid, k)
	}

	prev, err := enableForwarding(netnsName)
	if err != nil {
		return nil, err
	}
	restoreSysctls := func() error {
		var errs []error
		for key, val := range prev {
			if _, err := nsOutput(netnsName, "sysctl", "-q", "-w", key+"="+val); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	if err := apply(); err != nil {
		return nil, errors.Join(fmt.Errorf("install %s in netns %s: %w", k, netnsName, err), restoreSysctls())
	}
	var once sync.Once
	return func() error {
		var rerr error
		once.Do(func() {
			if err := undo(); err != nil {
				rerr = fmt.Errorf("remove %s from netns %s: %w", k, netnsName, err)
			}
			rerr = errors.Join(rerr, restoreSysctls())
		})
		return rerr
	}, nil
}

// IPTablesBackend returns the backend of the default iptables-restore:
// "nf_tables" or "legacy" (from `iptables-restore --version`).
func IPTablesBackend() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "iptables-restore", "--version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("iptables-restore --version: %w: %s", err, bytes.TrimSpace(out))
	}
	s := string(out)
	if i, j := strings.LastIndexByte(s, '('), strings.LastIndexByte(s, ')'); i >= 0 && j > i {
		return s[i+1 : j], nil
	}
	return "legacy", nil // versions before 1.8 have no backend suffix
}

// checkNetns refuses anything but an existing named namespace, so that a
// mistake can never run the commands in the root namespace.
func checkNetns(name string) error {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return fmt.Errorf("%w: netns name %q", ErrInvalid, name)
	}
	if _, err := os.Stat("/run/netns/" + name); err != nil {
		return fmt.Errorf("netns %q: %w", name, err)
	}
	return nil
}

// nsRun runs a command in the namespace with stdin.
func nsRun(ns, stdin string, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// nsOutput runs a command in the namespace and returns its stdout.
func nsOutput(ns string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s in netns %s: %w: %s", name, strings.Join(args, " "), ns, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}

// enableForwarding turns forwarding on and returns the previous values.
func enableForwarding(ns string) (map[string]string, error) {
	prev := make(map[string]string)
	for _, key := range forwardingSysctls {
		val, err := nsOutput(ns, "sysctl", "-n", key)
		if err != nil {
			return nil, err
		}
		prev[key] = strings.TrimSpace(val)
	}
	for _, key := range forwardingSysctls {
		if _, err := nsOutput(ns, "sysctl", "-q", "-w", key+"=1"); err != nil {
			return nil, err
		}
	}
	return prev, nil
}

// nftDeleteScript deletes both kube-proxy tables whether or not they exist.
func nftDeleteScript() string {
	var b strings.Builder
	for _, f := range []nftFamily{nftV4, nftV6} {
		fmt.Fprintf(&b, "add table %s %s\ndelete table %s %s\n", f.family, nftTable, f.family, nftTable)
	}
	return b.String()
}

// iptCleanupLeftovers removes kube-proxy's KUBE-* chains from the nat and
// filter tables of the namespace, and the built-in chain rules that jump to
// them, so that Install can be repeated.
func iptCleanupLeftovers(ns string) error {
	var script strings.Builder
	for _, table := range []string{"filter", "nat"} {
		save, err := nsOutput(ns, "iptables-save", "-t", table)
		if err != nil {
			return err
		}
		if s := iptLeftoverRemoval(table, save); s != "" {
			script.WriteString(s)
		}
	}
	if script.Len() == 0 {
		return nil
	}
	return nsRun(ns, script.String(), "iptables-restore", "-w", "--noflush")
}
