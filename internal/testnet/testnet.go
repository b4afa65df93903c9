//go:build linux

package testnet

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/xdpgate/xdpgate/internal/nsenter"
	"golang.org/x/sys/unix"
)

// ErrOutsideTestRange is returned for an address outside 198.18.0.0/15 and
// 2001:2::/48.
var ErrOutsideTestRange = errors.New("address outside the benchmarking ranges 198.18.0.0/15 and 2001:2::/48")

var (
	testRange4 = netip.MustParsePrefix("198.18.0.0/15")
	testRange6 = netip.MustParsePrefix("2001:2::/48")
)

// InTestRange reports whether a is inside the benchmarking ranges.
func InTestRange(a netip.Addr) bool {
	a = a.Unmap()
	return testRange4.Contains(a) || testRange6.Contains(a)
}

// PrivRequired reports whether the environment says privileged tests must
// run (CI=true or XDPGATE_REQUIRE_PRIV=1).
func PrivRequired() bool {
	return os.Getenv("CI") == "true" || os.Getenv("XDPGATE_REQUIRE_PRIV") == "1"
}

// RequirePriv skips t when not root and the tools (ip, ethtool) are missing,
// or fails it when PrivRequired.
func RequirePriv(t testing.TB) {
	t.Helper()
	var why string
	if os.Geteuid() != 0 {
		why = "needs root (network namespaces, veth, XDP)"
	} else {
		for _, tool := range []string{"ip", "ethtool"} {
			if _, err := exec.LookPath(tool); err != nil {
				why = fmt.Sprintf("needs %s in PATH: %v", tool, err)
				break
			}
		}
	}
	if why == "" {
		return
	}
	if PrivRequired() {
		t.Fatalf("privileged test cannot run: %s (CI=true or XDPGATE_REQUIRE_PRIV=1 make this a failure)", why)
	}
	t.Skip(why)
}

var seq atomic.Uint32

// uniq returns a short name unique in this process: prefix + pid + counter.
func uniq(prefix string) string {
	n := seq.Add(1)
	s := fmt.Sprintf("%s%x%x", prefix, os.Getpid()&0xffff, n)
	if len(s) > 15 {
		s = s[len(s)-15:]
	}
	return s
}

// NS is a named network namespace created for a test.
type NS struct {
	// Name is the namespace's name under /var/run/netns.
	Name   string
	handle netns.NsHandle
}

// NewNS creates a namespace and registers its deletion with t.Cleanup. Its
// loopback is brought up.
func NewNS(t testing.TB) *NS {
	t.Helper()
	name := uniq("xg")
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	ns := &NS{Name: name}
	t.Cleanup(func() {
		if ns.handle.IsOpen() {
			ns.handle.Close()
		}
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("open netns %s: %v", name, err)
	}
	ns.handle = h
	ns.MustRun(t, "ip", "link", "set", "lo", "up")
	return ns
}

// Handle returns the namespace handle (valid until cleanup).
func (n *NS) Handle() netns.NsHandle { return n.handle }

// Do runs fn with the calling goroutine's OS thread switched into the
// namespace, then switches back. Sockets created in fn stay in the
// namespace. Goroutines started by fn do not inherit it.
func (n *NS) Do(fn func() error) error {
	if err := nsenter.Do(n.handle, fn); err != nil {
		return fmt.Errorf("netns %s: %w", n.Name, err)
	}
	return nil
}

// Run runs a command inside the namespace (ip netns exec) and returns its
// combined output.
func (n *NS) Run(name string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), n.Name, err, out.String())
	}
	return out.String(), nil
}

// MustRun is Run that fails the test on error.
func (n *NS) MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := n.Run(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// VethOpts configure a veth pair.
type VethOpts struct {
	// Queues is the number of RX and TX queues of both ends (default 1).
	Queues int
	// MTU of both ends (default 1500).
	MTU int
}

// Veth is a veth pair between two namespaces.
type Veth struct {
	A, B         *NS
	AName, BName string
	AIndex       int
	BIndex       int
	AMAC, BMAC   [6]byte
}

// NewVeth creates a veth pair with end AName in a and BName in b (names are
// made unique from the given prefixes, at most 8 characters each), brings
// both ends up and returns it. Deleting the namespaces removes it.
func NewVeth(t testing.TB, a *NS, aPrefix string, b *NS, bPrefix string, o VethOpts) *Veth {
	t.Helper()
	if o.Queues == 0 {
		o.Queues = 1
	}
	if o.MTU == 0 {
		o.MTU = 1500
	}
	v := &Veth{A: a, B: b, AName: uniq(trim(aPrefix)), BName: uniq(trim(bPrefix))}
	la := netlink.NewLinkAttrs()
	la.Name = v.AName
	la.MTU = o.MTU
	la.NumTxQueues = o.Queues
	la.NumRxQueues = o.Queues
	la.Namespace = netlink.NsFd(a.handle)
	veth := &netlink.Veth{LinkAttrs: la, PeerName: v.BName, PeerNamespace: netlink.NsFd(b.handle),
		PeerNumTxQueues: uint32(o.Queues), PeerNumRxQueues: uint32(o.Queues), PeerMTU: uint32(o.MTU)}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("add veth %s/%s: %v", v.AName, v.BName, err)
	}
	for _, end := range []struct {
		ns   *NS
		name string
		idx  *int
		mac  *[6]byte
	}{{a, v.AName, &v.AIndex, &v.AMAC}, {b, v.BName, &v.BIndex, &v.BMAC}} {
		err := end.ns.Do(func() error {
			l, err := netlink.LinkByName(end.name)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetMTU(l, o.MTU); err != nil {
				return fmt.Errorf("set mtu: %w", err)
			}
			if err := netlink.LinkSetUp(l); err != nil {
				return fmt.Errorf("set up: %w", err)
			}
			*end.idx = l.Attrs().Index
			copy(end.mac[:], l.Attrs().HardwareAddr)
			return nil
		})
		if err != nil {
			t.Fatalf("veth end %s in %s: %v", end.name, end.ns.Name, err)
		}
	}
	return v
}

func trim(p string) string {
	if len(p) > 8 {
		return p[:8]
	}
	return p
}

// AddAddr adds an address with prefix length (e.g. "198.18.0.1/24") to dev.
func (n *NS) AddAddr(t testing.TB, dev, cidr string) {
	t.Helper()
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		t.Fatalf("AddAddr(%q): %v", cidr, err)
	}
	if !InTestRange(p.Addr()) {
		t.Fatalf("AddAddr(%q): %v", cidr, ErrOutsideTestRange)
	}
	args := []string{"addr", "add", cidr, "dev", dev}
	if p.Addr().Is6() {
		args = append(args, "nodad")
	}
	n.MustRun(t, "ip", args...)
}

// AddRoute adds a route to dst (CIDR) via gw (an address) in the namespace.
func (n *NS) AddRoute(t testing.TB, dst, gw string) {
	t.Helper()
	p, err := netip.ParsePrefix(dst)
	if err != nil {
		t.Fatalf("AddRoute(%q): %v", dst, err)
	}
	g, err := netip.ParseAddr(gw)
	if err != nil {
		t.Fatalf("AddRoute(%q, %q): %v", dst, gw, err)
	}
	if !InTestRange(p.Addr()) || !InTestRange(g) {
		t.Fatalf("AddRoute(%q, %q): %v", dst, gw, ErrOutsideTestRange)
	}
	n.MustRun(t, "ip", "route", "add", dst, "via", gw)
}

// TxOff turns transmit checksum offload off on dev (ethtool -K dev tx off),
// so that frames it sends towards a managed interface carry complete L4
// checksums (a veth peer in the same host sends CHECKSUM_PARTIAL frames,
// whose L4 checksum XDP sees unfinished).
func (n *NS) TxOff(t testing.TB, dev string) {
	t.Helper()
	n.MustRun(t, "ethtool", "-K", dev, "tx", "off")
}

// Sysctl sets a sysctl inside the namespace, e.g. "net.ipv4.ip_forward=1".
func (n *NS) Sysctl(t testing.TB, kv string) {
	t.Helper()
	n.MustRun(t, "sysctl", "-q", "-w", kv)
}

// Ping sends up to count ICMP echo requests (IPv4 or IPv6) from inside the
// namespace, each waiting up to one second for its reply, and returns nil at
// the first matching reply. It uses a raw socket, so it needs no ping binary.
func (n *NS) Ping(dst netip.Addr, count int) error {
	if !InTestRange(dst) {
		return fmt.Errorf("ping %s: %w", dst, ErrOutsideTestRange)
	}
	return n.Do(func() error {
		family, proto, typ, replyTyp := unix.AF_INET, unix.IPPROTO_ICMP, byte(8), byte(0)
		if dst.Is6() {
			family, proto, typ, replyTyp = unix.AF_INET6, unix.IPPROTO_ICMPV6, 128, 129
		}
		fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return fmt.Errorf("raw icmp socket: %w", err)
		}
		defer unix.Close(fd)
		tv := unix.Timeval{Sec: 1}
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return fmt.Errorf("SO_RCVTIMEO: %w", err)
		}
		var sa unix.Sockaddr
		if dst.Is4() {
			sa = &unix.SockaddrInet4{Addr: dst.As4()}
		} else {
			sa = &unix.SockaddrInet6{Addr: dst.As16()}
		}
		id := uint16(os.Getpid())
		buf := make([]byte, 1500)
		for seqNo := 1; seqNo <= count; seqNo++ {
			req := []byte{typ, 0, 0, 0, byte(id >> 8), byte(id), byte(seqNo >> 8), byte(seqNo), 'x', 'g'}
			if dst.Is4() { // the kernel computes ICMPv6 checksums itself
				cs := icmpChecksum(req)
				req[2], req[3] = byte(cs>>8), byte(cs)
			}
			if err := unix.Sendto(fd, req, 0, sa); err != nil {
				return fmt.Errorf("send echo to %s: %w", dst, err)
			}
			for {
				m, _, err := unix.Recvfrom(fd, buf, 0)
				if err != nil {
					break // timeout: next try
				}
				b := buf[:m]
				if dst.Is4() && m >= 20 {
					b = b[int(b[0]&0x0f)*4:] // raw IPv4 sockets include the IP header
				}
				if len(b) >= 8 && b[0] == replyTyp && b[4] == byte(id>>8) && b[5] == byte(id) &&
					b[6] == byte(seqNo>>8) && b[7] == byte(seqNo) {
					return nil
				}
			}
		}
		return fmt.Errorf("no echo reply from %s after %d requests", dst, count)
	})
}

// icmpChecksum is the Internet checksum (RFC 1071) of b.
func icmpChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = (sum & 0xffff) + (sum >> 16)
	}
	return ^uint16(sum)
}
