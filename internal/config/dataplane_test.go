package config_test

import (
	"fmt"
	"testing"

	"github.com/xdpgate/xdpgate/dataplane"
	"github.com/xdpgate/xdpgate/internal/config"
)

// TestConfigDefaultsMatchDataplane keeps the SNAT default, which config
// repeats to stay a leaf package, equal to the dataplane's.
func TestConfigDefaultsMatchDataplane(t *testing.T) {
	want := fmt.Sprintf("%d-%d", dataplane.DefaultSNATPortMin, dataplane.DefaultSNATPortMax)
	if got := config.Default().XDP.SNATPortRange; got != want {
		t.Errorf("Default().XDP.SNATPortRange = %s, want %s", got, want)
	}
}
