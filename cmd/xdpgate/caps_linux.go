package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Capabilities xdpgate needs (linux/capability.h numbers).
var neededCaps = []struct {
	bit  uint
	name string
	why  string
}{
	{12, "CAP_NET_ADMIN", "attach XDP programs, netlink routes and neighbours"},
	{13, "CAP_NET_RAW", "open AF_XDP sockets"},
	{14, "CAP_IPC_LOCK", "lock UMEM memory"},
	{38, "CAP_PERFMON", "have the classifier's packet-pointer arithmetic verified (without it the verifier treats the loader as unprivileged)"},
	{39, "CAP_BPF", "load the classifier and its maps"},
}

const capSysAdmin = 21 // grants BPF and PERFMON on kernels before 5.8, and alongside them

// missingCaps returns the capabilities from neededCaps that the process's
// effective set lacks, read from /proc/self/status.
func missingCaps() ([]string, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return nil, fmt.Errorf("read capabilities: %w", err)
	}
	defer f.Close()
	var eff uint64
	found := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			if eff, err = strconv.ParseUint(strings.TrimSpace(v), 16, 64); err != nil {
				return nil, fmt.Errorf("parse CapEff %q: %w", v, err)
			}
			found = true
		}
	}
	if !found {
		return nil, fmt.Errorf("no CapEff in /proc/self/status")
	}
	var missing []string
	for _, c := range neededCaps {
		if eff&(1<<c.bit) == 0 && !((c.bit == 38 || c.bit == 39) && eff&(1<<capSysAdmin) != 0) {
			missing = append(missing, c.name+" ("+c.why+")")
		}
	}
	return missing, nil
}
