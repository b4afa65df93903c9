package sink

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/gopacket/layers"
)

var (
	testEndpoints = []netip.AddrPort{
		netip.MustParseAddrPort("198.18.2.10:8080"),
		netip.MustParseAddrPort("198.18.2.11:8080"),
		netip.MustParseAddrPort("[2001:2::2:10]:8080"),
		netip.MustParseAddrPort("[2001:2::2:11]:8080"),
	}
	testExpectSrc = []netip.Prefix{netip.MustParsePrefix("198.18.64.0/18"), netip.MustParsePrefix("2001:2::64:0/112")}
)

const (
	tcp = layers.IPProtocolTCP
	udp = layers.IPProtocolUDP
)

func TestCheck(t *testing.T) {
	chk := newChecker(testEndpoints, testExpectSrc, nil)
	good4 := pkt{src: "198.18.64.1", dst: "198.18.2.10", proto: udp, sport: 1000, dport: 8080, payload: 18}
	good6 := pkt{src: "2001:2::64:1", dst: "2001:2::2:11", proto: tcp, sport: 1000, dport: 8080, payload: 10}
	corrupt := func(p pkt, at func(p pkt) int) func(t testing.TB) []byte {
		return func(t testing.TB) []byte {
			f := p.frame(t)
			f[at(p)] ^= 0x5a
			return f
		}
	}
	long := func(p pkt) func(t testing.TB) []byte {
		return func(t testing.TB) []byte { return p.frame(t)[:sampleBytes] }
	}
	cases := []struct {
		name              string
		frame             func(t testing.TB) []byte
		csum, trans, skip bool
	}{
		{"v4 udp ok", good4.frame, false, false, false},
		{"v4 tcp ok", pkt{src: "198.18.64.1", dst: "198.18.2.11", proto: tcp, sport: 1, dport: 8080}.frame, false, false, false},
		{"v6 tcp ok", good6.frame, false, false, false},
		{"v6 udp ok", pkt{src: "2001:2::64:1", dst: "2001:2::2:10", proto: udp, sport: 1, dport: 8080, payload: 7}.frame, false, false, false},
		{"v4 vlan ok", pkt{vlan: 7, src: "198.18.64.1", dst: "198.18.2.10", proto: udp, sport: 1, dport: 8080}.frame, false, false, false},
		{"v4 options ok", pkt{ipOpts: true, src: "198.18.64.1", dst: "198.18.2.10", proto: tcp, sport: 1, dport: 8080}.frame, false, false, false},
		{"v4 udp no checksum", pkt{udpNoSum: true, src: "198.18.64.1", dst: "198.18.2.10", proto: udp, sport: 1, dport: 8080}.frame, false, false, true},
		{"v4 ip header corrupted", corrupt(good4, func(p pkt) int { return p.l3Offset() + 8 }), true, false, false},
		{"v4 udp payload corrupted", corrupt(good4, func(p pkt) int { return p.l4Offset() + 9 }), true, false, false},
		{"v6 tcp checksum corrupted", corrupt(good6, func(p pkt) int { return p.l4Offset() + 16 }), true, false, false},
		{"v6 udp zero checksum", pkt{udpNoSum: true, src: "2001:2::64:1", dst: "2001:2::2:10", proto: udp, sport: 1, dport: 8080}.frame, true, false, false},
		{"v4 longer than sample", long(pkt{src: "198.18.64.1", dst: "198.18.2.10", proto: udp, sport: 1, dport: 8080, payload: 400}), false, false, true},
		{"v6 longer than sample", long(pkt{src: "2001:2::64:1", dst: "2001:2::2:10", proto: tcp, sport: 1, dport: 8080, payload: 400}), false, false, true},
		{"v4 later fragment", pkt{fragOff: 10, src: "198.18.64.1", dst: "198.18.2.10", proto: udp, sport: 1, dport: 8080}.frame, false, true, true},
		{"wrong destination port", pkt{src: "198.18.64.1", dst: "198.18.2.10", proto: udp, sport: 1, dport: 8081}.frame, false, true, false},
		{"wrong destination address", pkt{src: "198.18.64.1", dst: "198.18.2.12", proto: udp, sport: 1, dport: 8080}.frame, false, true, false},
		{"wrong source", pkt{src: "198.18.1.2", dst: "198.18.2.10", proto: udp, sport: 1, dport: 8080}.frame, false, true, false},
		{"wrong v6 source", pkt{src: "2001:2::65:1", dst: "2001:2::2:10", proto: udp, sport: 1, dport: 8080}.frame, false, true, false},
		{"icmp", pkt{src: "198.18.64.1", dst: "198.18.2.10", proto: layers.IPProtocolICMPv4}.frame, false, true, true},
		{"not ip", arpFrame, true, false, false},
		{"short", func(testing.TB) []byte { return []byte{1, 2, 3} }, true, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := chk.check(tc.frame(t))
			if v.checksumErr != tc.csum || v.translationErr != tc.trans || v.l4Skipped != tc.skip {
				t.Errorf("check() = csum %v trans %v skip %v (%q), want csum %v trans %v skip %v",
					v.checksumErr, v.translationErr, v.l4Skipped, v.reason, tc.csum, tc.trans, tc.skip)
			}
			if (v.checksumErr || v.translationErr) && v.reason == "" {
				t.Errorf("check() failed without a reason")
			}
		})
	}
}

// TestCheckReply: a sampled reply is checked for its checksums and its
// source, not against the endpoints or ExpectSrc.
func TestCheckReply(t *testing.T) {
	chk := newChecker(testEndpoints, testExpectSrc, []netip.AddrPort{
		netip.MustParseAddrPort("198.18.3.1:80"), netip.MustParseAddrPort("[::ffff:198.18.3.2]:80")})
	good := pkt{src: "198.18.3.1", dst: "198.18.64.1", proto: udp, sport: 80, dport: 4000, payload: 12}
	cases := []struct {
		name        string
		frame       func(t testing.TB) []byte
		csum, trans bool
	}{
		{"ok", good.frame, false, false},
		{"mapped source ok", pkt{src: "198.18.3.2", dst: "198.18.64.1", proto: tcp, sport: 80, dport: 4000}.frame, false, false},
		{"checksum corrupted", func(t testing.TB) []byte {
			f := good.frame(t)
			f[good.l4Offset()+9] ^= 0x5a
			return f
		}, true, false},
		{"other source port", pkt{src: "198.18.3.1", dst: "198.18.64.1", proto: udp, sport: 81, dport: 4000}.frame, false, true},
		{"icmp", pkt{src: "198.18.3.1", dst: "198.18.64.1", proto: layers.IPProtocolICMPv4}.frame, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := chk.checkReply(tc.frame(t))
			if v.checksumErr != tc.csum || v.translationErr != tc.trans {
				t.Errorf("checkReply() = csum %v trans %v (%q), want csum %v trans %v", v.checksumErr, v.translationErr, v.reason, tc.csum, tc.trans)
			}
		})
	}
	// The same frame as the other direction fails both expectations.
	if v := chk.check(good.frame(t)); !v.translationErr {
		t.Errorf("check(reply) = %+v, want a translation error", v)
	}
}

func TestCheckNoExpectations(t *testing.T) {
	chk := newChecker(nil, nil, nil)
	f := pkt{src: "198.18.9.9", dst: "198.18.3.1", proto: layers.IPProtocolICMPv4}.frame(t)
	if v := chk.check(f); v.checksumErr || v.translationErr {
		t.Errorf("check(icmp) with no expectations = %+v, want no error", v)
	}
}

func TestCheckMappedExpectSrc(t *testing.T) {
	chk := newChecker(nil, []netip.Prefix{netip.MustParsePrefix("::ffff:198.18.64.0/114")}, nil)
	f := pkt{src: "198.18.64.9", dst: "198.18.2.10", proto: udp, sport: 1, dport: 2}.frame(t)
	if v := chk.check(f); v.translationErr {
		t.Errorf("check(src in mapped prefix) = %+v, want no translation error", v)
	}
}

// TestCheckRandom compares the checker with gopacket's checksums on random
// frames, some with one byte of a checksummed region flipped.
func TestCheckRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	chk := newChecker(nil, nil, nil)
	for i := range 2000 {
		p := pkt{src: "198.18.64.1", dst: "198.18.2.10", proto: udp, sport: uint16(rng.IntN(65536)), dport: uint16(rng.IntN(65536)),
			payload: rng.IntN(180), ipOpts: rng.IntN(4) == 0}
		if rng.IntN(2) == 0 {
			p.proto = tcp
		}
		if rng.IntN(2) == 0 {
			p.src, p.dst, p.ipOpts = "2001:2::64:1", "2001:2::2:10", false
		}
		f := p.frame(t)
		mutated := rng.IntN(2) == 0
		var at int
		if mutated {
			// Anything from the IPv4 TTL on (the IPv6 payload length
			// excluded: it is structural) is covered by a checksum.
			// (addresses are in the pseudo-header).
			lo := p.l3Offset() + 8
			at = lo + rng.IntN(p.ipEnd()-lo)
			if netip.MustParseAddr(p.src).Is4() && at == p.l3Offset()+9 {
				at++ // the protocol byte would change what is parsed
			}
			f[at] ^= byte(1 + rng.IntN(255))
		}
		v := chk.check(f)
		if v.checksumErr != mutated {
			t.Fatalf("case %d %+v mutated at %d: check() checksumErr = %v, want %v (%s)", i, p, at, v.checksumErr, mutated, v.reason)
		}
	}
}

func FuzzCheck(f *testing.F) {
	f.Add(pkt{src: "198.18.64.1", dst: "198.18.2.10", proto: udp, sport: 1, dport: 8080}.frame(f))
	f.Add(pkt{src: "2001:2::64:1", dst: "2001:2::2:10", proto: tcp, sport: 1, dport: 8080}.frame(f))
	f.Add(pkt{vlan: 3, ipOpts: true, src: "198.18.64.1", dst: "198.18.2.10", proto: tcp, sport: 1, dport: 8080}.frame(f))
	chk := newChecker(testEndpoints, testExpectSrc, nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > sampleBytes {
			b = b[:sampleBytes]
		}
		v := chk.check(b)
		if (v.checksumErr || v.translationErr) && v.reason == "" {
			t.Errorf("check(%x) failed without a reason", b)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	ep := netip.MustParseAddrPort("198.18.2.10:80")
	cases := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"no ifname", Config{}, "Ifname"},
		{"zero endpoint", Config{Ifname: "x", Endpoints: []netip.AddrPort{ep, {}}}, "Endpoints[1]"},
		{"duplicate endpoint", Config{Ifname: "x", Endpoints: []netip.AddrPort{ep, netip.MustParseAddrPort("[::ffff:198.18.2.10]:80")}}, "Endpoints[1]"},
		{"zoned endpoint", Config{Ifname: "x", Endpoints: []netip.AddrPort{netip.MustParseAddrPort("[fe80::1%eth0]:80")}}, "Endpoints[0]"},
		{"bad prefix", Config{Ifname: "x", ExpectSrc: []netip.Prefix{{}}}, "ExpectSrc[0]"},
		{"zero reply source", Config{Ifname: "x", ReplySources: []netip.AddrPort{{}}}, "ReplySources[0]"},
		{"duplicate reply source", Config{Ifname: "x", Endpoints: []netip.AddrPort{ep}, ReplySources: []netip.AddrPort{ep, ep}}, "ReplySources[1]"},
		{"negative clients", Config{Ifname: "x", TrackClients: -1}, "TrackClients"},
		{"too many clients", Config{Ifname: "x", TrackClients: MaxTrackClients + 1}, "TrackClients"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.validate()
			if err == nil || !errorsIs(err, ErrBadConfig) || !contains(err.Error(), tc.field) {
				t.Errorf("validate() = %v, want an ErrBadConfig naming %s", err, tc.field)
			}
		})
	}
	// A reply source may equal an endpoint: one is matched by
	// destination, the other by source.
	if err := (&Config{Ifname: "x", Endpoints: []netip.AddrPort{ep}, ReplySources: []netip.AddrPort{ep}, TrackClients: 131072}).validate(); err != nil {
		t.Errorf("validate(good) = %v, want nil", err)
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
func contains(s, sub string) bool     { return strings.Contains(s, sub) }
