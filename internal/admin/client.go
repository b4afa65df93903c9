package admin

import (
	"encoding/json"
	"fmt"
	"time"
)

// ReadStats fetches /v1/stats from the admin socket at path: what `xdpgate
// inspect stats` prints, for programs (the benchmark rig reads it around
// each burst).
func ReadStats(path string, timeout time.Duration) (Stats, error) {
	b, err := get(newClient(path, timeout), path, "stats", nil)
	if err != nil {
		return Stats{}, err
	}
	var st Stats
	if err := json.Unmarshal(b, &st); err != nil {
		return Stats{}, fmt.Errorf("decode stats: %w", err)
	}
	return st, nil
}

// StatsOf is what /v1/stats answers for src, for a program that holds the
// dataplane itself (the benchmark rig's raw forwarder).
func StatsOf(src Source) Stats { return statsOf(src) }
