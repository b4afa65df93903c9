//go:build linux

package testnet

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func TestInTestRange(t *testing.T) {
	cases := []struct {
		addr string
		want bool
	}{
		{"198.18.0.1", true},
		{"198.19.255.255", true},
		{"198.20.0.1", false},
		{"10.0.0.1", false},
		{"::ffff:198.18.1.1", true},
		{"2001:2::1", true},
		{"2001:2:0:ffff::1", true},
		{"2001:3::1", false},
	}
	for _, tc := range cases {
		if got := InTestRange(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("InTestRange(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

func TestUniq(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		n := uniq("prefix12")
		if len(n) > 15 {
			t.Fatalf("uniq() = %q, %d chars, want <= 15", n, len(n))
		}
		if seen[n] {
			t.Fatalf("uniq() = %q twice", n)
		}
		seen[n] = true
	}
}

func TestPrivTopology(t *testing.T) {
	RequirePriv(t)
	var names []string
	t.Run("build", func(t *testing.T) {
		a, b := NewNS(t), NewNS(t)
		names = append(names, a.Name, b.Name)
		v := NewVeth(t, a, "ta", b, "tb", VethOpts{Queues: 2, MTU: 1400})
		a.AddAddr(t, v.AName, "198.18.40.1/24")
		b.AddAddr(t, v.BName, "198.18.40.2/24")
		a.AddAddr(t, v.AName, "2001:2:0:40::1/64")
		b.AddAddr(t, v.BName, "2001:2:0:40::2/64")
		a.TxOff(t, v.AName)
		if out := a.MustRun(t, "ethtool", "-k", v.AName); !strings.Contains(out, "tx-checksumming: off") {
			t.Errorf("after TxOff: ethtool -k = %q, want tx-checksumming: off", out)
		}
		before, err := netns.Get()
		if err != nil {
			t.Fatal(err)
		}
		defer before.Close()
		err = a.Do(func() error {
			l, err := netlink.LinkByName(v.AName)
			if err != nil {
				return err
			}
			if l.Attrs().NumRxQueues != 2 || l.Attrs().MTU != 1400 {
				t.Errorf("veth rx queues, mtu = %d, %d, want 2, 1400", l.Attrs().NumRxQueues, l.Attrs().MTU)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Do: %v", err)
		}
		after, err := netns.Get()
		if err != nil {
			t.Fatal(err)
		}
		defer after.Close()
		if !before.Equal(after) {
			t.Errorf("namespace after Do = %v, want %v", after, before)
		}
		for _, dst := range []string{"198.18.40.2", "2001:2:0:40::2"} {
			if err := a.Ping(netip.MustParseAddr(dst), 3); err != nil {
				t.Errorf("Ping(%s) = %v, want nil", dst, err)
			}
		}
		if err := a.Ping(netip.MustParseAddr("10.1.1.1"), 1); err == nil {
			t.Errorf("Ping(10.1.1.1) = nil, want ErrOutsideTestRange")
		}
	})
	for _, n := range names {
		if _, err := os.Stat("/var/run/netns/" + n); !os.IsNotExist(err) {
			t.Errorf("namespace %s still exists after cleanup (stat: %v)", n, err)
		}
	}
}
