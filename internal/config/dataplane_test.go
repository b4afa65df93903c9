package config_test

import (
	"fmt"
	"testing"

	"github.com/xdpgate/xdpgate/pipeline"
	"github.com/xdpgate/xdpgate/internal/config"
)

// TestConfigDefaultsMatchDataplane keeps the SNAT default, which config
// repeats to stay a leaf package, equal to the dataplane's.
func TestConfigDefaultsMatchDataplane(t *testing.T) {
	want := fmt.Sprintf("%d-%d", pipeline.DefaultSNATPortMin, pipeline.DefaultSNATPortMax)
	if got := config.Default().XDP.SNATPortRange; got != want {
		t.Errorf("Default().XDP.SNATPortRange = %s, want %s", got, want)
	}
}
